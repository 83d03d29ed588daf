"""LDA by closed-form natural-gradient SVI: the update is Hoffman et al.'s, and a short run learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.data import corpus
from models.topics import lda as lda_model
from models.topics import online_lda


def _synthetic_corpus(key, n_docs=120, n_topics=3, n_vocab=30, doc_length=60):
    # well-separated true topics: each puts 90% of its mass on its own block of 10 words
    topics = np.full([n_topics, n_vocab], 0.1 / (n_vocab - 10))
    for k in range(n_topics):
        topics[k, 10 * k:10 * (k + 1)] = 0.09
    key_theta, key_words = jax.random.split(key)
    theta = jax.random.dirichlet(key_theta, jnp.full([n_topics], 0.3), (n_docs,))
    probs = np.asarray(theta) @ topics
    def draw(k, p):
        return jnp.bincount(jax.random.categorical(k, jnp.log(p), shape=(doc_length,)), length=n_vocab)

    counts = jax.vmap(draw)(jax.random.split(key_words, n_docs), probs)
    return np.asarray(counts, np.float32), topics


def test_gradient_is_lambda_minus_dense_lambda_hat(key):
    key_data, key_init = jax.random.split(key)
    counts, _ = _synthetic_corpus(key_data, n_docs=8)
    topics = online_lda.init_topic_concentrations(key_init, 3, counts.shape[1])
    config = online_lda.OnlineLDAConfig(alpha=0.3, beta=0.2, local_tolerance=0.0, n_local=500)
    loss_fn = online_lda.natural_gradient_loss(n_docs=40, n_tokens=float(counts.sum()), config=config)
    batch = tuple(jnp.asarray(a) for a in corpus.to_bag_of_words(counts))
    grad = jax.jit(jax.grad(lambda t: loss_fn(t, None, batch, None)[0]))(topics)
    # the same update computed densely over all 30 words, from the local step's fixed point
    exp_elog_topics = np.exp(np.asarray(online_lda.dirichlet_expectation(topics)))
    word_topics = jnp.broadcast_to(exp_elog_topics.T, (8, *exp_elog_topics.T.shape))
    gamma, _ = jax.jit(online_lda.document_step, static_argnums=(2, 3, 4))(word_topics, jnp.asarray(counts),
                                                                          0.3, 500, 0.0)
    exp_elog_theta = np.exp(np.asarray(online_lda.dirichlet_expectation(gamma)))
    stats = exp_elog_topics * (exp_elog_theta.T @ (counts / (exp_elog_theta @ exp_elog_topics)))
    # the local step converged: gamma solves its fixed-point equation
    ratio = counts / (exp_elog_theta @ exp_elog_topics)
    np.testing.assert_allclose(0.3 + exp_elog_theta * (ratio @ exp_elog_topics.T), gamma, rtol=1e-4)
    # float32 sums of ~500 tokens: agreement to 1e-4 relative; a wrong scale (40 / 8) or prior is off by > 10%
    np.testing.assert_allclose(grad, topics - (0.2 + 40 / 8 * stats), rtol=1e-4, atol=1e-3)


def test_short_run_lowers_held_out_perplexity(key):
    key_data, key_fit = jax.random.split(key)
    counts, true_topics = _synthetic_corpus(key_data)
    train, test = counts[:100], counts[100:]
    observed, held_out = corpus.split_words(test, 0)
    config = online_lda.OnlineLDAConfig(alpha=0.3, beta=0.1)

    def held_out_perplexity(topics):
        infer = lambda docs: lda_model.fixed_point_document_topics(topics, docs, alpha=0.3)
        return lda_model.document_completion_perplexity(infer, topics, observed, held_out)

    start = np.asarray(online_lda.topic_word_means(
        online_lda.init_topic_concentrations(jax.random.split(key_fit)[0], 3, 30)))   # fit's own start
    result = online_lda.fit_online_lda(key_fit, train, 3, n_epochs=10, batch_size=20, config=config,
                                       progress_bar=False)
    fitted = np.asarray(online_lda.topic_word_means(result.params))
    before, after = held_out_perplexity(start), held_out_perplexity(fitted)
    truth = held_out_perplexity(true_topics)
    # the start is near-uniform (perplexity ~30, the vocabulary size), the true topics give ~22. 50
    # steps must close almost all of that gap: within 5% of the truth's perplexity (~1,200 held-out
    # tokens for 3 x 30 topic parameters put a fitted model within ~1-2% of the truth; the start is 38% off)
    assert before > 1.25 * truth
    assert after < 1.05 * truth
    assert np.all(np.isfinite(result.history["elbo_per_token"]))
    assert result.history["elbo_per_token"][-1] > result.history["elbo_per_token"][0]


def test_bad_input_raises_before_fitting(key):
    counts = np.ones([10, 5], np.float32)
    with pytest.raises(ValueError, match="batch_size"):
        online_lda.fit_online_lda(key, counts, 2, batch_size=11)
    with pytest.raises(ValueError, match="non-negative"):
        online_lda.fit_online_lda(key, -counts, 2)
    with pytest.raises(ValueError, match=r"\[n_docs, n_vocab\]"):
        online_lda.fit_online_lda(key, counts[0], 2)
    with pytest.raises(ValueError, match="kappa"):
        online_lda.fit_online_lda(key, counts, 2, batch_size=5, config=online_lda.OnlineLDAConfig(kappa=0.4))
