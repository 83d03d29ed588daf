"""The logistic-normal topic model: likelihood by hand, Monte Carlo EM on synthetic data, AIS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from models.data import corpus
from models.topics import lntm


def test_sparse_likelihood_matches_dense_hand_computation(key):
    counts = np.array([[1, 0, 2, 0, 0], [0, 3, 1, 0, 4]])
    bow = corpus.to_bag_of_words(counts)
    assert bow.word_index.shape == (2, 3) and bow.counts[0, 2] == 0  # padded with a zero count
    key_eta, key_beta = jax.random.split(key)
    eta = jax.random.normal(key_eta, (2, 2))
    beta = jax.random.normal(key_beta, (2, 5))
    model = lntm.build_lntm(jnp.zeros(2), jnp.zeros(2), jnp.asarray(bow.word_index), 5)
    bn = model.observe(eta=eta, beta=beta, x=jnp.asarray(bow.counts))
    dense = np.sum(counts * np.log(np.asarray(jax.nn.softmax(eta) @ jax.nn.softmax(beta))), -1)
    np.testing.assert_allclose(bn["x"].log_prob, dense, rtol=1e-5)
    with pytest.raises(ValueError, match="distinct words"):
        corpus.to_bag_of_words(counts, max_words=2)


def _synthetic_corpus(key, n_docs=60, n_topics=3, n_vocab=30, doc_length=60):
    # drawn from the LNTM itself: eta ~ N(0, 1.5^2 I); well-separated topics, 90% of each topic's
    # mass on its own block of 10 words
    topics = np.full([n_topics, n_vocab], 0.1 / (n_vocab - 10))
    for k in range(n_topics):
        topics[k, 10 * k:10 * (k + 1)] = 0.09
    key_eta, key_words = jax.random.split(key)
    probs = np.asarray(jax.nn.softmax(1.5 * jax.random.normal(key_eta, (n_docs, n_topics)), -1)) @ topics
    draw = jax.vmap(lambda k, p: jnp.bincount(jax.random.categorical(k, jnp.log(p), shape=(doc_length,)),
                                              length=n_vocab))
    return np.asarray(draw(jax.random.split(key_words, n_docs), probs)), topics


@pytest.mark.slow  # ~20 s, nearly all of it XLA compilation of the EM program
def test_monte_carlo_em_improves_likelihood_recovers_topics_and_resumes(key, tmp_path):
    key_data, key_fit = jax.random.split(key)
    counts, true_topics = _synthetic_corpus(key_data)
    config = lntm.LNTMConfig(batch_size=20, n_e_steps=5, n_leapfrogs=10, learning_rate=1.0)
    # every run checkpoints every 10 epochs, so all three share one compiled program
    result = lntm.fit_lntm(key_fit, counts, 3, n_epochs=30, config=config, checkpoint_dir=tmp_path / "whole",
                           checkpoint_every=10)
    # a run stopped after 10 epochs and resumed ends where the uninterrupted one did: beta, and the HMC
    # chains, their step sizes and the prior carried in fit's state (bit for bit: same key, CPU)
    lntm.fit_lntm(key_fit, counts, 3, n_epochs=10, config=config, checkpoint_dir=tmp_path / "cut",
                  checkpoint_every=10)
    resumed = lntm.fit_lntm(key_fit, counts, 3, n_epochs=30, config=config, checkpoint_dir=tmp_path / "cut",
                            checkpoint_every=10, resume=True)
    for a, b in zip(jax.tree.leaves((result.params, result.state)),
                    jax.tree.leaves((resumed.params, resumed.state)), strict=True):
        np.testing.assert_array_equal(a, b)
    state, trace = lntm.LNTMState.from_result(result), result.history
    ll = trace["log_likelihood_per_word"]
    # training log-likelihood per word at the HMC samples: from ~-3.5 (uniform over 30 words is
    # -3.40) to ~-3.13 (the true topics give about -3.1); its epoch-to-epoch noise is ~0.01 nats, so a
    # 0.1-nat gain cannot come from noise
    assert np.mean(ll[-5:]) > ll[0] + 0.1
    fitted = np.asarray(lntm.topic_word_probs(state))
    hellinger = np.sqrt(0.5 * np.sum((np.sqrt(fitted)[:, None] - np.sqrt(true_topics)[None]) ** 2, -1))
    rows, cols = scipy.optimize.linear_sum_assignment(hellinger)
    # 3600 tokens for 3 x 30 topic probabilities: fitted topics are ~0.1 Hellinger from the truth,
    # an unfitted or mixed topic >= 0.4; 0.25 separates the two
    assert hellinger[rows, cols].max() < 0.25
    # the HMC chains mix: dual averaging holds the acceptance near its 0.6 target
    assert 0.4 < np.mean(trace["acceptance_rate"][-10:]) < 0.8
    with pytest.raises(ValueError, match="batch_size"):
        lntm.fit_lntm(key_fit, counts, 3, config=config._replace(batch_size=100))


def _exact_log_marginal(counts, phi, eta_mean, eta_logstd):
    """log p(x) for K = 2 by quadrature: theta_1 = sigmoid(eta_1 - eta_2), eta_1 - eta_2 Gaussian."""
    mean = eta_mean[0] - eta_mean[1]
    sd = np.sqrt(np.exp(2 * eta_logstd[0]) + np.exp(2 * eta_logstd[1]))
    grid = mean + sd * np.linspace(-12, 12, 40001)
    theta1 = 1 / (1 + np.exp(-grid))
    word_probs = theta1[:, None] * phi[0] + (1 - theta1[:, None]) * phi[1]        # [grid, V]
    log_lik = np.sum(counts * np.log(word_probs), -1)
    log_density = -0.5 * ((grid - mean) / sd) ** 2 - np.log(sd * np.sqrt(2 * np.pi))
    integrand = np.exp(log_lik + log_density - np.max(log_lik))
    return np.log(np.trapezoid(integrand, grid)) + np.max(log_lik)


@pytest.mark.slow  # ~25 s, mostly compilation
def test_ais_matches_quadrature_on_two_topics(key):
    key_beta, key_ais = jax.random.split(key)
    beta = 2.0 * jax.random.normal(key_beta, (2, 6))
    counts = np.array([[3, 0, 1, 0, 2, 0], [0, 5, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    eta_mean, eta_logstd = jnp.array([0.5, -0.5]), jnp.array([0.0, 0.3])
    state = lntm.LNTMState(beta, eta_mean, eta_logstd)
    log_marginal, stderr, acceptance = lntm.ais_log_likelihood(
        key_ais, state, counts, n_chains=32, n_temperatures=200, step_size=0.3, n_leapfrogs=5)
    exact = np.array([_exact_log_marginal(c, np.asarray(jax.nn.softmax(beta, -1), np.float64),
                                          np.asarray(eta_mean), np.asarray(eta_logstd)) for c in counts])
    stderr = np.asarray(stderr)
    assert np.all(stderr < 0.05)  # 200 temperatures make the weights nearly equal: a sharp test
    # the estimate of p(x) is unbiased with relative standard error `stderr` (delta method), so log p
    # lies within 4 stderr except with probability ~1e-4 per document (normal approximation; the
    # Jensen bias stderr^2 / 2 is negligible); 0.005 nats more covers float32 rounding over 200
    # temperatures
    np.testing.assert_array_less(np.abs(np.asarray(log_marginal) - exact), 4 * stderr + 0.005)
    assert np.all(np.asarray(acceptance) > 0.5)
