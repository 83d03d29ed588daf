"""LDA in the DSL: reparameterised Dirichlet gradients, perplexity by hand, topic recovery by SVI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special

import ppl
from models.topics import lda as lda_model


def test_dirichlet_node_samples_carry_gradients(key):
    def sample_mean(concentration):
        bn = ppl.BayesianNet(key=key)
        return jnp.sum(bn.dirichlet("theta", concentration, n_samples=2000)[..., 0]) / 2000

    grad = jax.jit(jax.grad(sample_mean))(jnp.array([2.0, 3.0]))
    # d/da1 E[theta_1] = a2 / (a1 + a2)^2 = 0.12, d/da2 = -a1 / (a1 + a2)^2 = -0.08; with 2000
    # samples the implicit-gradient estimate has standard error ~0.004: 0.02 is 5 sigma
    np.testing.assert_allclose(grad, [0.12, -0.08], atol=0.02)


def test_perplexity_by_hand():
    proportions = np.array([[0.5, 0.5]])
    topics = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])  # word probabilities 1/4, 1/2, 1/4
    counts = np.array([[2, 1, 0]])
    expected = np.exp(-(2 * np.log(0.25) + np.log(0.5)) / 3)  # = 32 ** (1/3)
    np.testing.assert_allclose(lda_model.perplexity(proportions, topics, counts), expected, rtol=1e-12)
    np.testing.assert_allclose(expected, 32 ** (1 / 3), rtol=1e-12)


def test_log_joint_matches_hand_computation(key):
    counts = jnp.array([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]])

    @jax.jit
    def log_likelihood_and_hand(key):
        bn = lda_model.build_lda(2, 2, 3, alpha=0.5, beta=0.3).observe(key, x=counts)
        theta, phi = bn["theta"].value, bn["phi"].value
        return bn["x"].log_prob, jnp.sum(counts * jnp.log(theta @ phi))

    value, expected = log_likelihood_and_hand(key)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def _synthetic_corpus(key, n_docs=150, n_topics=3, n_vocab=30, doc_length=80):
    # well-separated true topics: each puts 90% of its mass on its own block of 10 words
    topics = np.full([n_topics, n_vocab], 0.1 / (n_vocab - 10))
    for k in range(n_topics):
        topics[k, 10 * k:10 * (k + 1)] = 0.09
    key_theta, key_words = jax.random.split(key)
    theta = jax.random.dirichlet(key_theta, jnp.full([n_topics], 0.3), (n_docs,))
    probs = np.asarray(theta) @ topics
    counts = jax.vmap(lambda k, p: jnp.bincount(jax.random.categorical(k, jnp.log(p), shape=(doc_length,)),
                                                length=n_vocab))(jax.random.split(key_words, n_docs), probs)
    return np.asarray(counts), topics


@pytest.mark.slow
def test_svi_recovers_synthetic_topics(key):
    key_data, key_fit = jax.random.split(key)
    counts, true_topics = _synthetic_corpus(key_data)
    # 150 documents in batches of 50: 3 Adam steps per epoch, 300 steps in all
    result = lda_model.fit_lda(key_fit, counts, 3, n_epochs=100, batch_size=50, alpha=0.3, beta=0.1,
                               learning_rate=0.1)
    fitted = np.asarray(lda_model.topic_word_means(result.params))
    hellinger = np.sqrt(0.5 * np.sum((np.sqrt(fitted)[:, None] - np.sqrt(true_topics)[None]) ** 2, -1))
    rows, cols = scipy.optimize.linear_sum_assignment(hellinger)
    # 12,000 tokens for 3 x 30 parameters: the estimates sit within ~0.05 Hellinger of the truth,
    # while a wrong or unfitted topic is >= 0.5 away; 0.2 separates the two by a wide margin
    assert hellinger[rows, cols].max() < 0.2
    # the minibatch ELBO estimate improves by far more than its noise (hundreds of nats)
    trace = result.history["elbo"]
    assert trace.shape == (100,) and np.mean(trace[-10:]) > np.mean(trace[:10]) + 100
    with pytest.raises(ValueError, match="batch_size"):
        lda_model.fit_lda(key_fit, counts, 3, batch_size=1000)


def test_fixed_point_document_topics_is_a_fixed_point():
    topics = np.array([[0.7, 0.2, 0.05, 0.05], [0.05, 0.05, 0.2, 0.7]])
    counts = np.array([[5.0, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 3.0, 9.0]])
    theta = np.asarray(lda_model.fixed_point_document_topics(topics, counts, alpha=0.1, n_iterations=200),
                       np.float64)
    # every sweep keeps sum(gamma_d) = K alpha + n_d, so gamma = theta * (K alpha + n_d); plugging it
    # back into the update must return it (float32 iterates: 1e-4 relative)
    gamma = theta * (2 * 0.1 + counts.sum(1, keepdims=True))
    weights = np.exp(scipy.special.digamma(gamma))
    updated = 0.1 + weights * ((counts / (weights @ topics)) @ topics.T)
    np.testing.assert_allclose(updated, gamma, rtol=1e-4)
    assert theta[0, 0] > 0.9 and theta[2, 1] > 0.9   # documents written in one topic's words
