"""Exact GP and SVGP: marginal likelihood vs scipy, posterior vs the closed form, SVGP ELBO identity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from models.gp import exact as gp_exact
from models.gp import kernels, svgp


def _data(key, n=25, d=2):
    key_x, key_y = jax.random.split(key)
    x = jax.random.normal(key_x, (n, d))
    return x, jnp.sin(2 * x[:, 0]) + 0.3 * x[:, 1] + 0.1 * jax.random.normal(key_y, (n,))


def test_log_marginal_likelihood_matches_scipy(key):
    with jax.enable_x64(True):
        x, y = _data(key)
        for kernel, fn in [("rbf", kernels.rbf), ("matern32", kernels.matern32)]:
            params = gp_exact.init_params(2, lengthscale=1.3, variance=0.8, noise_variance=0.2)
            cov = fn(x, x, lengthscale=1.3, variance=0.8) + (0.2 + 1e-6) * jnp.eye(25)
            expected = scipy.stats.multivariate_normal(np.zeros(25), np.asarray(cov)).logpdf(np.asarray(y))
            # float64 Cholesky of a well-conditioned 25x25 matrix: agreement to ~1e-10 nats
            np.testing.assert_allclose(gp_exact.log_marginal_likelihood(params, x, y, kernel), expected,
                                       rtol=1e-9)


def test_posterior_matches_closed_form(key):
    with jax.enable_x64(True):
        x, y = _data(key)
        x_test = jnp.linspace(-2, 2, 7)[:, None] * jnp.ones([1, 2])
        params = gp_exact.init_params(2, lengthscale=0.9, variance=1.4, noise_variance=0.05)
        mean, var = gp_exact.exact_posterior(params, x, y, x_test)
        k = lambda a, b: kernels.rbf(a, b, lengthscale=0.9, variance=1.4)
        inverse = np.linalg.inv(np.asarray(k(x, x)) + (0.05 + 1e-6) * np.eye(25))
        ks = np.asarray(k(x, x_test))
        np.testing.assert_allclose(mean, ks.T @ inverse @ np.asarray(y), rtol=1e-7, atol=1e-9)
        expected_var = np.diag(np.asarray(k(x_test, x_test)) - ks.T @ inverse @ ks)
        np.testing.assert_allclose(var, expected_var, rtol=1e-6, atol=1e-9)


def test_type_two_maximum_likelihood_improves_the_evidence(key):
    x, y = _data(key, n=40)
    start = gp_exact.init_params(2, lengthscale=1.0, variance=0.2, noise_variance=1.0)
    result = gp_exact.fit_exact(x, y, params=start, n_steps=150, learning_rate=0.05)
    params, trace = result.params, result.history["log_marginal_likelihood"]
    # deterministic optimisation from a start that calls everything noise (noise variance 1 vs the
    # true 0.01): the evidence of the fitted hyperparameters is ~50 nats higher; demand 20
    assert gp_exact.log_marginal_likelihood(params, x, y) > gp_exact.log_marginal_likelihood(start, x, y) + 20
    assert jnp.exp(params.log_noise_variance) < 0.1
    assert trace.shape == (150,) and np.all(np.isfinite(trace)) and trace[-1] > trace[0] + 20
    with pytest.raises(ValueError, match="unknown kernel"):
        gp_exact.fit_exact(x, y, kernel="cubic")
    with pytest.raises(ValueError, match=r"x must be \[n, d\]"):
        gp_exact.log_marginal_likelihood(start, x, y[:-1])


def _optimal_q(hyper, x, y, jitter):
    # with Z = X, f = L v exactly, so p(v | y) is Gaussian with precision I + L^T L / s2
    n = x.shape[0]
    chol = jnp.linalg.cholesky(gp_exact.kernel_fn("rbf", hyper)(x, x) + jitter * jnp.eye(n))
    noise = jnp.exp(hyper.log_noise_variance)
    cov = jnp.linalg.inv(jnp.eye(n) + chol.T @ chol / noise)
    return svgp.SVGPParams(hyper, x, cov @ chol.T @ y / noise, svgp.tril_raw_from(jnp.linalg.cholesky(cov)))


def test_svgp_elbo_equals_evidence_with_optimal_q(key):
    with jax.enable_x64(True):
        x, y = _data(key, n=20)
        hyper = gp_exact.init_params(2, lengthscale=1.1, variance=0.9, noise_variance=0.2)
        jitter = 1e-10
        params = _optimal_q(hyper, x, y, jitter)
        log_weights = jax.jit(lambda key, p: svgp.svgp_elbo(key, p, x, y, 20, n_particles=8,
                                                            jitter=jitter).log_weight)
        log_weight = log_weights(jax.random.key(1), params)
        evidence = gp_exact.log_marginal_likelihood(hyper, x, y, jitter=jitter)
        # q = p(v | y) makes log p(y, v) - log q(v) = log p(y) for every sample; what is left is f's
        # conditional std (<= 1e-5 from the clipped variance) times |y - f| / s2 summed: < 1e-3 nats
        np.testing.assert_allclose(log_weight, evidence, atol=1e-3)
        worse = params._replace(q_mean=params.q_mean + 0.3)
        lower = log_weights(jax.random.key(2), worse)
        # moving q's mean by 0.3 costs KL = 20 * 0.3^2 / 2 * (precision >= 1) >= 0.9 nats in every sample
        assert np.all(np.asarray(lower) < evidence - 0.5)


def test_svgp_fit_predicts_a_smooth_function_and_resumes_exactly(key, tmp_path):
    from inference.train_step import build_program

    key_data, key_init, key_fit = jax.random.split(key, 3)
    x, y = _data(key_data, n=200, d=1)
    y = jnp.sin(2 * x[:, 0]) + 0.1 * jax.random.normal(key_data, (200,))
    params = svgp.init_svgp_params(key_init, x, 15, gp_exact.init_params(1))
    # 200 points in batches of 50: 4 Adam steps per epoch, 400 steps in all. Every run checkpoints
    # every 50 epochs, so all three share one compiled program (50 epochs a call)
    options = dict(batch_size=50, n_particles=4, learning_rate=0.03, checkpoint_every=50)
    result = svgp.fit_svgp(key_fit, params, x, y, n_epochs=100, checkpoint_dir=tmp_path / "whole", **options)
    x_test = jnp.linspace(-1.5, 1.5, 30)[:, None]
    mean, var = svgp.predict_svgp(result.params, x_test)
    # noise std 0.1: a working fit is within 0.15 RMSE of the truth (an unfitted one is ~0.7 off)
    assert np.sqrt(np.mean((mean - jnp.sin(2 * x_test[:, 0])) ** 2)) < 0.15
    elbo = result.history["elbo"]
    assert elbo.shape == (100,) and np.all(var > 0) and np.mean(elbo[-10:]) > np.mean(elbo[:10])
    assert result.history["n_skipped"].sum() == 0
    # stopped after 50 of 100 epochs and resumed from its checkpoint: the parameters of the
    # uninterrupted run, bit for bit (same key, CPU), and no new program
    misses = build_program.cache_info().misses
    svgp.fit_svgp(key_fit, params, x, y, n_epochs=50, checkpoint_dir=tmp_path / "cut", **options)
    resumed = svgp.fit_svgp(key_fit, params, x, y, n_epochs=100, checkpoint_dir=tmp_path / "cut", resume=True,
                            **options)
    assert build_program.cache_info().misses == misses
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_inducing"):
        svgp.init_svgp_params(key_init, x, 500, gp_exact.init_params(1))
    with pytest.raises(ValueError, match="n_epochs"):
        svgp.fit_svgp(key, params, x, y, n_epochs=0)
