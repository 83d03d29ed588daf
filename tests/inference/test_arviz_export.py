"""`to_arviz`: posterior, sample_stats from any Info, per-observation log_likelihood, LOO and WAIC."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import inference
import ppl
from tests.inference import train_models as tm

arviz = pytest.importorskip("arviz")


@ppl.meta_bayesian_net
def regression(x):
    """w ~ N(0, I); y_i ~ N(x_i w, 0.5^2), i < n (one observation per row)."""
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=1.0, group_ndims=1)
    bn.normal("y", x @ w, std=0.5, group_ndims=1)
    return bn


class NutsLikeInfo(NamedTuple):
    acceptance_rate: jax.Array
    is_divergent: jax.Array
    tree_depth: jax.Array
    n_leapfrogs: jax.Array
    step_size: jax.Array
    something_else: jax.Array


@pytest.fixture(scope="module")
def fitted():
    key_x, key_w, key_y, key_hmc = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(key_x, (30, 2))
    y = x @ jnp.array([1.0, -0.5]) + 0.5 * jax.random.normal(key_y, (30,))
    hmc = inference.HMC(step_size=0.1, n_leapfrogs=8, adapt_step_size=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples, info = hmc.sample(key_hmc, regression(x), {"y": y}, n_samples=200, n_warmup=200, n_chains=2)
    return x, y, samples, info


def test_groups_log_likelihood_and_loo(fitted):
    x, y, samples, info = fitted
    idata = inference.to_arviz(samples, info, model=regression(x), observed={"y": y}, key=jax.random.key(1))
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data",
                                   "posterior_predictive"}
    assert idata.log_likelihood["y"].shape == (2, 200, 30)                 # one value per observation
    w = np.asarray(samples["w"])
    expected = stats.norm.logpdf(np.asarray(y), w @ np.asarray(x).T, 0.5)   # [2, 200, 30]
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(idata.observed_data["y"].values, np.asarray(y))
    assert idata.posterior_predictive["y"].shape == (2, 200, 30)
    assert set(idata.sample_stats) == {"acceptance_rate", "diverging", "energy", "lp", "n_steps", "step_size"}
    assert idata.sample_stats["step_size"].shape == (2, 200)               # per chain, broadcast to draws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # ArviZ's note that WAIC may be unreliable here
        loo, waic = arviz.loo(idata), arviz.waic(idata)
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic) and loo.n_data_points == 30
    # the pointwise log predictive density is close to the sum of the per-observation terms
    lppd = np.sum(np.log(np.mean(np.exp(expected), axis=(0, 1))))
    assert loo.elpd_loo < lppd < loo.elpd_loo + 10


def test_any_info_and_result_objects(fitted):
    _, _, samples, _ = fitted
    ones = jnp.ones((2, 200))
    info = NutsLikeInfo(0.9 * ones, ones > 2, 3 * ones, 7 * ones, jnp.array([0.1, 0.2]), ones)
    idata = inference.to_arviz(samples, info)
    assert set(idata.sample_stats) == {"acceptance_rate", "diverging", "tree_depth", "n_steps", "step_size"}
    assert idata.sample_stats["diverging"].dtype == bool

    class Result(NamedTuple):
        samples: dict
        info: NutsLikeInfo
        state: tuple
    from_result = inference.to_arviz(Result(samples, info, ()))
    np.testing.assert_array_equal(from_result.sample_stats["tree_depth"], idata.sample_stats["tree_depth"])
    assert inference.to_arviz(samples).posterior["w"].shape == (2, 200, 2)   # the old call still works


def test_group_ndims_and_missing_latents():
    x = tm.data(jax.random.key(1), 12).reshape(3, 4)

    @ppl.meta_bayesian_net
    def grouped():
        bn = ppl.BayesianNet()
        mu = bn.normal("mu", 0.0, std=1.0)
        bn.normal("x", jnp.full((3, 4), mu), std=1.0, group_ndims=2)
        return bn
    draws = {"mu": jnp.linspace(-1, 1, 10).reshape(2, 5)}
    per_row = inference.log_likelihood(grouped(), {"x": x}, draws, group_ndims=1)["x"]
    per_element = inference.log_likelihood(grouped(), {"x": x}, draws)["x"]
    assert per_row.shape == (2, 5, 3) and per_element.shape == (2, 5, 3, 4)
    np.testing.assert_allclose(per_row, per_element.sum(-1), rtol=1e-6)
    with pytest.raises(ValueError, match=r"samples lack \['mu'\]"):
        inference.log_likelihood(grouped(), {"x": x}, {})
    with pytest.raises(ValueError, match="pass model= as well"):
        inference.to_arviz(draws, observed={"x": x})
    with pytest.raises(ValueError, match=r"leading \[n_chains, n_samples\] axes"):
        inference.to_arviz({"a": np.zeros((2, 5)), "b": np.zeros((2, 4))})
