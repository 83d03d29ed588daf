"""Starting points, dependent supports, improper priors and deterministic nodes of `.sample` (issue 17).

Statistical checks are MCSE z-tests, z = (E_hat[f] - E[f]) / MCSE with MCSE = sd(f) / sqrt(ESS(f))
(multi-chain ESS of `inference.diagnostics`); |z| < 4.5 has a two-sided false-failure rate of
6.8e-6 per comparison for a normal z.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints

import inference
import ppl
from inference.diagnostics import effective_sample_size
from inference.hmc import HMC, NUTS
from inference.hmc import model as dsl
from inference.log_joint import make_log_joint

Z_MAX = 4.5


def z_score(values, exact):
    values = np.asarray(values, np.float64)
    return (values.mean() - exact) / (values.std() / np.sqrt(effective_sample_size(values)))


def quiet_sample(sampler, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # short-warmup and low-acceptance notices
        return sampler.sample(*args, **kwargs)


# ------------------------------------------------------------------ starts
@ppl.meta_bayesian_net
def narrow():
    # the likelihood is finite only for x in (y - 0.5, y): 1/8 of the default box [-2, 2]
    bn = ppl.BayesianNet()
    x = bn.normal("x", 0.0, std=3.0)
    bn.uniform("y", x, x + 0.5)
    return bn


def test_invalid_default_start_is_retried_and_a_hopeless_one_named():
    # P(no valid start in 100 tries) = (7/8)^100 = 1.6e-6 per chain
    samples, info = quiet_sample(HMC(0.05, 5, adaptation="none"), jax.random.key(0), narrow(), {"y": 1.7},
                                 n_samples=20, n_warmup=0, n_chains=4)
    assert np.all((samples["x"] > 1.2) & (samples["x"] < 1.7))
    with pytest.raises(ValueError, match=r"chain\(s\) \[0, 1\].*100 tries.*nodes \['y'\].*'x'"):
        quiet_sample(HMC(0.05, 5, adaptation="none"), jax.random.key(0), narrow(), {"y": 1e4},
                     n_samples=20, n_warmup=0, n_chains=2)


def test_non_finite_user_start_names_the_chain():
    with pytest.raises(ValueError, match=r"init\['x'\] is not finite for chain\(s\) \[1\]"):
        HMC(0.1, 3).sample(jax.random.key(0), narrow(), {"y": 1.7}, init={"x": jnp.array([1.5, jnp.nan])},
                           n_samples=5, n_warmup=0)
    with pytest.raises(ValueError, match="not both"):
        HMC(0.1, 3).sample(jax.random.key(0), narrow(), {"y": 1.7}, init={"x": 1.5},
                           init_strategy=inference.init_to_value({"x": 1.5}), n_samples=5, n_warmup=0)


@ppl.meta_bayesian_net
def shifted():
    bn = ppl.BayesianNet()
    bn.normal("a", jnp.full(2, 5.0), std=0.1, group_ndims=1, n_samples=3)
    bn.gamma("b", 400.0, 100.0)   # mean 4, sd 0.2
    return bn


@pytest.mark.parametrize("strategy, a_low, a_high", [
    (inference.init_to_uniform(0.5), -0.5, 0.5),
    (inference.init_to_median(), 4.8, 5.2),      # the median of 15 draws of N(5, 0.1)
    (inference.init_to_sample(), 4.4, 5.6),      # one draw: 6 sd
])
def test_strategies_start_where_they_say(strategy, a_low, a_high):
    meta_bn = shifted()
    model = make_log_joint(meta_bn, {})
    start = jax.jit(lambda keys, b: dsl.initial_states(keys, meta_bn, {}, model, {"b": b}, strategy))
    states, ok, tries = start(jax.random.split(jax.random.key(0), 3), jnp.array(4.0))
    assert np.all(ok) and np.all(tries == 1)
    assert states.position["a"].shape == (3, 3, 2)   # [n_chains, n_samples, batch]
    assert np.all((states.position["a"] > a_low) & (states.position["a"] < a_high))
    np.testing.assert_allclose(states.position["b"], np.log(4.0), rtol=1e-6)   # init value, log space


# ------------------------------------------------------------------ dependent support, improper prior
@ppl.meta_bayesian_net
def nested_uniform():
    bn = ppl.BayesianNet()
    z = bn.uniform("z", 0.0, 1.0)
    bn.uniform("w", 0.0, z)
    return bn


@pytest.mark.slow
def test_dependent_support_matches_exact_posterior():
    # p(z, w) = 1/z on 0 < w < z < 1: z ~ U(0, 1) (E 1/2), E[w] = 1/4
    samples, _ = quiet_sample(NUTS(), jax.random.key(1), nested_uniform(), {}, n_samples=300, n_warmup=200,
                              n_chains=4)
    z, w = np.asarray(samples["z"]), np.asarray(samples["w"])
    assert np.all((w > 0) & (w < z) & (z < 1))
    assert abs(z_score(z, 0.5)) < Z_MAX and abs(z_score(w, 0.25)) < Z_MAX


@ppl.meta_bayesian_net
def flat_location(n):
    bn = ppl.BayesianNet()
    mu = bn.stochastic("mu", dist.ImproperUniform(constraints.real, (), ()))
    scale = bn.stochastic("scale", dist.ImproperUniform(constraints.positive, (), ()))
    bn.normal("y", jnp.broadcast_to(mu, (n,)), std=scale, group_ndims=1)
    return bn


@pytest.mark.slow
@pytest.mark.parametrize("init", [None, {"mu": 0.5, "scale": 2.0}])
def test_flat_prior_posterior_is_the_normalised_likelihood(init):
    # flat priors on mu and scale: the marginal posterior of mu is a Student-t with n - 2 degrees of
    # freedom, location mean(y) and scale sqrt(sum (y - mean)^2 / ((n - 2) n))
    y = np.array([0.3, 1.1, -0.4, 0.9, 1.6, 0.2, 0.7, 1.0], np.float32)
    samples, _ = quiet_sample(NUTS(), jax.random.key(2), flat_location(y.size), {"y": y}, init=init,
                              n_samples=300, n_warmup=200, n_chains=4)
    assert abs(z_score(samples["mu"], y.mean())) < Z_MAX
    assert np.all(np.asarray(samples["scale"]) > 0)


# ------------------------------------------------------------------ deterministic nodes
@ppl.meta_bayesian_net
def regression(x):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=1.0, group_ndims=1)
    bn.deterministic("mean", x @ w)
    bn.normal("y", bn["mean"], std=0.5, group_ndims=1)
    return bn


def test_deterministic_nodes_are_returned():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)
    y = x @ jnp.array([1.0, -1.0])
    samples, _ = quiet_sample(HMC(0.1, 3, adaptation="none"), jax.random.key(0), regression(x), {"y": y},
                              n_samples=7, n_warmup=0, n_chains=2)
    assert set(samples) == {"w", "mean"} and samples["mean"].shape == (2, 7, 6)
    expected = np.einsum("nd,csd->csn", x, samples["w"])
    np.testing.assert_allclose(samples["mean"], expected, rtol=1e-5, atol=1e-5)
    only, _ = quiet_sample(HMC(0.1, 3, adaptation="none"), jax.random.key(0), regression(x), {"y": y},
                           n_samples=7, n_warmup=0, n_chains=2, return_nodes=["mean"])
    assert set(only) == {"mean"}
    np.testing.assert_array_equal(only["mean"], samples["mean"])
    with pytest.raises(ValueError, match=r"return_nodes \['bogus'\]"):
        HMC(0.1, 3).sample(jax.random.key(0), regression(x), {"y": y}, n_samples=7, return_nodes=["bogus"])


def test_retries_in_lockstep_start_where_the_vmapped_retries_start():
    # `initial_states` retries all chains in one loop; `initial_state` is one chain's loop
    from inference.hmc import initialization

    meta_bn, observed = narrow(), {"y": jnp.asarray(1.7)}
    _, static = dsl.split_model(meta_bn, observed)
    model = dsl.log_joint_model(meta_bn, observed, dsl.latent_summary(meta_bn, observed, static))
    keys = jax.random.split(jax.random.key(2), 6)
    common = dict(meta_bn=meta_bn, observed=observed, specs=model.specs,
                  strategy=inference.init_to_uniform(), log_joint_fn=model.log_joint_fn)
    start = functools.partial(initialization.initial_state, values={}, **common)
    starts = functools.partial(initialization.initial_states, **common)
    states, is_valid, n_tries = jax.jit(functools.partial(starts, values={}))(keys)
    states_v, is_valid_v, n_tries_v = jax.jit(jax.vmap(start))(keys)
    np.testing.assert_array_equal(is_valid, is_valid_v)
    assert np.all(is_valid) and len(set(np.asarray(n_tries).tolist())) > 1   # retried, unequally
    np.testing.assert_array_equal(n_tries, n_tries_v)
    np.testing.assert_array_equal(states.position["x"], states_v.position["x"])   # the same draws
    # XLA may fuse the two loops differently: the log-joint agrees to float32 rounding
    np.testing.assert_allclose(states.log_joint, states_v.log_joint, rtol=1e-6)

    # values without the chains' leading axis are refused by name before anything is traced
    with pytest.raises(ValueError, match=r"values\['x'\] has shape \(\)"):
        starts(keys, values={"x": jnp.asarray(1.5)})
