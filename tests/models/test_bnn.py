"""BNN smoke tests on a small split, and the SG-MCMC driver end to end."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from inference.sgmcmc.driver import sample
from inference.sgmcmc.gradients import scaled_log_joint
from inference.sgmcmc.sgld import SGLD
from models import bnn
from models.data import uci


def _small_split(n_train=64, n_test=16):
    split = uci.load_uci("boston", split=0)  # packaged with mlxtend: no data directory needed
    return split._replace(x_train=split.x_train[:n_train], y_train=split.y_train[:n_train],
                          x_test=split.x_test[:n_test], y_test=split.y_test[:n_test])


@pytest.mark.slow  # the SGVB training step takes XLA on CPU ~10-30 s to compile
def test_sgvb_fits_beats_the_mean_predictor_and_resumes_exactly(tmp_path):
    split = _small_split()
    data = uci.standardize(split)
    # every run checkpoints every 10 epochs, so all of them share one compiled program (10 epochs a call)
    options = dict(method="sgvb", n_hidden=8, batch_size=16, n_samples=20, checkpoint_every=10)
    posterior = bnn.fit(jax.random.key(0), data, n_epochs=30, checkpoint_dir=tmp_path / "whole", **options)
    # stopped after 10 of 30 epochs and resumed: the same q, hence the same draws (same key, CPU)
    bnn.fit(jax.random.key(0), data, n_epochs=10, checkpoint_dir=tmp_path / "cut", **options)
    resumed = bnn.fit(jax.random.key(0), data, n_epochs=30, checkpoint_dir=tmp_path / "cut", resume=True,
                      **options)
    for name, value in posterior.samples.items():
        np.testing.assert_array_equal(value, resumed.samples[name])
    with pytest.raises(ValueError, match="method='sgvb'"):
        bnn.fit(jax.random.key(0), data, method="sgld", n_epochs=1, resume=True)
    assert posterior.samples["w0"].shape == (20, 8, 14) and posterior.samples["w1"].shape == (20, 1, 9)
    metrics = bnn.evaluate(posterior, data)
    # predicting the training mean has RMSE = the spread of the test targets around it; on Boston a
    # fitted network does far better (linear regression: ~0.55 of it), a failed fit does not.
    assert metrics["rmse"] < 0.8 * _baseline_rmse(split) and np.isfinite(metrics["test_log_likelihood"])


def _baseline_rmse(split):
    return np.sqrt(np.mean((split.y_test - split.y_train.mean()) ** 2))


@ppl.meta_bayesian_net
def _regression(x):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(2), std=1.0, group_ndims=1)
    bn.normal("y", x @ w, std=1.0, group_ndims=1)
    return bn


def test_driver_samples_the_conjugate_posterior():
    # Bayesian linear regression, w ~ N(0, I), y ~ N(x w, 1): the posterior is N(S x'y, S) with
    # S = (I + x'x)^-1. Full-batch SGLD chains through the driver (vmap over 64 chains, epochs in
    # scan, thinning): z-test of each chain-averaged posterior mean against the MCSE from the
    # spread over chains; |z| < 4.5 fails with probability 1.5e-5 (t, 63 dof) per coordinate.
    # The SGLD bias at learning rate 0.002 is below 0.2% of a posterior sd (<< MCSE ~ 2%).
    x = jax.random.normal(jax.random.key(0), (20, 2))
    y = x @ jnp.array([0.5, -1.0]) + jax.random.normal(jax.random.key(1), (20,))
    cov = np.linalg.inv(np.eye(2) + np.asarray(x.T @ x))
    mean = cov @ np.asarray(x.T @ y)

    def model_fn(batch):
        model = _regression(batch["x"])
        model.log_joint = scaled_log_joint(20 / 20, ["y"])
        return model, {"y": batch["y"]}

    # full batches (exact gradients; the driver still permutes and slices), thin 2
    result = sample(jax.random.key(2), SGLD(0.002), model_fn, {"x": x, "y": y}, {"w": jnp.asarray(mean)},
                    batch_size=20, n_epochs=400, n_warmup_epochs=40, thinning=2, n_chains=64,
                    progress_bar=False)
    w = result.samples["w"]
    # one batch per epoch and thin 2: each call runs 2 steps and keeps 1 sample
    assert w.shape == (64, 400, 2) and result.info.learning_rate.shape == (64, 400)
    assert int(result.state.sampler.count[0]) == 880 and int(result.state.step) == 880
    chain_means = w.mean(1)
    z = (chain_means.mean(0) - mean) / (chain_means.std(0, ddof=1) / np.sqrt(64))
    np.testing.assert_array_less(np.abs(z), 4.5)
    # the spread of all draws matches the posterior sd (within 15%: MCSE of a variance from ~2000
    # effective draws is ~3%, plus the SGLD bias of 0.05%)
    np.testing.assert_allclose(w.reshape(-1, 2).std(0), np.sqrt(np.diag(cov)), rtol=0.15)


def test_driver_errors():
    x, y = jnp.ones((12, 2)), jnp.ones(12)
    model_fn = lambda batch: (_regression(batch["x"]), {"y": batch["y"]})
    init = {"w": jnp.zeros((3, 2))}
    with pytest.raises(ValueError, match="batch_size"):
        sample(jax.random.key(0), SGLD(1e-3), model_fn, {"x": x, "y": y}, init, batch_size=13, n_epochs=1)
    with pytest.raises(ValueError, match="same leading"):
        sample(jax.random.key(0), SGLD(1e-3), model_fn, {"x": x, "y": y[:5]}, init, batch_size=2, n_epochs=1)
    with pytest.raises(ValueError, match="n_chains"):
        sample(jax.random.key(0), SGLD(1e-3), model_fn, {"x": x, "y": y}, {"w": jnp.zeros(2)}, batch_size=2,
               n_epochs=1, n_chains=3, is_init_batched=True)
    with pytest.raises(ValueError, match="thin"):
        sample(jax.random.key(0), SGLD(1e-3), model_fn, {"x": x, "y": y}, init, batch_size=2, n_epochs=1,
               thinning=0)


def test_hierarchical_prior_log_joint_matches_hand_computation():
    # w_i ~ N(0, 1 / lambda_i), log_lambda_i = log of Gamma(6, 6), log_tau = log of Gamma(1, 0.1),
    # y ~ N(forward(w, x), 1 / tau): the DSL's log-joint against scipy's densities (exact up to
    # float32 rounding).
    from scipy import stats

    layer_sizes = (3, 4, 1)
    x = np.asarray(jax.random.normal(jax.random.key(0), (5, 3)))
    y = np.asarray(jax.random.normal(jax.random.key(1), (5,)))
    latent = bnn.init_latent(jax.random.key(2), layer_sizes, weight_prior=(6.0, 6.0))
    assert set(latent) == {"w0", "w1", "log_tau", "log_lambda0", "log_lambda1"}
    assert set(bnn.init_latent(jax.random.key(2), layer_sizes, weight_prior=None)) == {"w0", "w1", "log_tau"}
    latent.update(log_lambda0=jnp.float32(0.7), log_lambda1=jnp.float32(-0.3), log_tau=jnp.float32(1.2))
    model = bnn.build_bnn(jnp.asarray(x), layer_sizes, noise_prior=(1.0, 0.1), weight_prior=(6.0, 6.0))
    value = float(model.observe(y=jnp.asarray(y), **latent).log_joint())

    def log_gamma_of_log(u, shape, rate):  # density of u = log(g), g ~ Gamma(shape, rate)
        return stats.gamma.logpdf(np.exp(u), shape, scale=1 / rate) + u

    expected = log_gamma_of_log(1.2, 1.0, 0.1)
    for i in range(2):
        u = float(latent[f"log_lambda{i}"])
        expected += log_gamma_of_log(u, 6.0, 6.0)
        expected += stats.norm.logpdf(np.asarray(latent[f"w{i}"]), 0.0, np.exp(-0.5 * u)).sum()
    mean = np.asarray(bnn.forward([latent["w0"], latent["w1"]], jnp.asarray(x)))
    expected += stats.norm.logpdf(y, mean, np.exp(-0.6)).sum()
    assert value == pytest.approx(expected, rel=1e-5)
