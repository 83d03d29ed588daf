"""`inference.is_loglikelihood` on a conjugate Gaussian model whose marginal likelihood is exact:
z ~ N(0, 1), x | z ~ N(z, SIGMA^2) per dimension, so x ~ N(0, 1 + SIGMA^2) and
z | x ~ N(x / (1 + SIGMA^2), SIGMA^2 / (1 + SIGMA^2))."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp

import inference
import ppl
from tests.inference.gaussian_model import SIGMA, X, build_model

POST_MEAN = X / (1 + SIGMA**2)
POST_LOGSTD = np.full(X.shape, 0.5 * np.log(SIGMA**2 / (1 + SIGMA**2)), np.float32)
LOG_EVIDENCE = np.sum(-0.5 * np.log(2 * np.pi * (1 + SIGMA**2)) - 0.5 * np.asarray(X)**2 / (1 + SIGMA**2), -1)


@ppl.meta_bayesian_net
def build_proposal(mean, logstd, n_particles=None):
    bn = ppl.BayesianNet()
    bn.normal("z", mean, logstd=logstd, group_ndims=1, n_samples=n_particles)
    return bn


def test_exact_for_any_k_when_the_proposal_is_the_posterior(key):
    """p(x, z) / q(z) = p(x) for every z, so every K (and K = 1, axis=None) gives log p(x) up to
    float32 rounding (rtol 1e-5)."""

    @jax.jit
    def body(key):
        estimates = []
        for n_particles, axis in ((None, None), (7, 0)):
            q = build_proposal(POST_MEAN, POST_LOGSTD, n_particles).observe(key)
            estimates.append(inference.is_loglikelihood(build_model(), {"x": X}, proposal=q, axis=axis))
        return estimates

    for estimate in body(key):
        assert estimate.shape == (2,)
        np.testing.assert_allclose(estimate, LOG_EVIDENCE, rtol=1e-5)


def test_converges_with_a_mediocre_proposal(key):
    """Proposal: the posterior shifted by 0.3 and 1.5 times wider (bounded weights, finite variance).
    By the delta method log p_hat_K has standard error se_K = std(w) / (sqrt(K) mean(w)) and bias
    -se_K^2 / 2 (negligible here); the error must be within 4 se_K (false-failure rate 6e-5 per
    check, 4 checks), and at K = 10000 se_K itself must be small, so the estimate has converged: the
    exact chi-square divergence of this proposal is 0.87 (1-D quadrature), so se_K = sqrt(0.87 / K) =
    0.0093; we require < 0.015 (the sample estimate of se_K is within a few percent at this K). The
    K = 100 estimate uses the first 100 samples."""
    n_particles = 10000

    @jax.jit
    def body(key):
        q = build_proposal(POST_MEAN + 0.3, POST_LOGSTD + np.log(1.5), n_particles).observe(key)
        z, log_q = q["z"].value, q["z"].log_prob
        estimate = inference.is_loglikelihood(build_model(), {"x": X}, proposal=q, axis=0)
        first_100 = inference.is_loglikelihood(build_model(), {"x": X}, latent={"z": (z[:100], log_q[:100])},
                                               axis=0)
        log_weights = inference.elbo(build_model(), {"x": X}, variational=q, axis=0).log_weight
        return estimate, first_100, log_weights

    estimate, first_100, log_weights = body(key)
    assert log_weights.shape == (n_particles, 2)

    def standard_error(log_w):
        w = np.exp(np.asarray(log_w, np.float64) - np.max(log_w, 0))
        return np.std(w, 0) / (np.sqrt(len(w)) * np.mean(w, 0))

    se = standard_error(log_weights)
    assert np.all(se < 0.015)
    np.testing.assert_array_less(np.abs(estimate - LOG_EVIDENCE), 4 * se)
    np.testing.assert_array_less(np.abs(first_100 - LOG_EVIDENCE), 4 * standard_error(log_weights[:100]))
    # the estimate is log-mean-exp of the log weights (float64 reference)
    np.testing.assert_allclose(estimate, sp.logsumexp(np.asarray(log_weights, np.float64), 0)
                               - np.log(n_particles), rtol=1e-5)


def test_stable_for_very_negative_log_weights():
    """Log weights near -1e4: exp underflows to 0 in float32 (and float64), so a naive
    log(mean(exp(log_w))) is -inf; the max-shifted estimate matches scipy's float64 logsumexp to
    float32 rounding at magnitude 1e4 (ulp 1e-3; atol 1e-2)."""
    z = np.linspace(-2., 2., 8, dtype=np.float32)[:, None, None] * np.ones((8, 2, 2), np.float32)  # [K, n, d]
    log_q = 1e4 + np.arange(8., dtype=np.float32)[:, None] * np.ones((8, 2), np.float32)           # [K, n]

    @jax.jit
    def body(z, log_q):
        estimate = inference.is_loglikelihood(build_model(), {"x": X}, latent={"z": (z, log_q)}, axis=0)
        log_w = build_model().observe(z=z, x=X).log_joint() - log_q
        return estimate, log_w, jnp.log(jnp.mean(jnp.exp(log_w), 0))

    estimate, log_w, naive = body(z, log_q)
    assert np.all(np.asarray(log_w) < -9990)
    assert np.all(np.isneginf(naive))                                             # naive underflows
    expected = sp.logsumexp(np.asarray(log_w, np.float64), 0) - np.log(8)
    assert np.all(np.isfinite(estimate))
    np.testing.assert_allclose(estimate, expected, atol=1e-2)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_mean_exp(axis):
    x = jnp.array([[-1e4, -1e4 - 1., -1e4 - 5.], [3., 1., -2.]])
    expected = sp.logsumexp(np.asarray(x, np.float64), axis=axis) - np.log(x.shape[axis])
    np.testing.assert_allclose(inference.log_mean_exp(x, axis), expected, rtol=1e-6)


def test_jit_agrees_with_no_jit(key):
    def estimate(key, x):
        q = build_proposal(POST_MEAN + 0.3, POST_LOGSTD, 20).observe(key)
        return inference.is_loglikelihood(build_model(), {"x": x}, proposal=q, axis=0)

    np.testing.assert_allclose(jax.jit(estimate)(key, X), estimate(key, X), rtol=1e-5)
