"""`inference.predictive`: posterior, variational and prior predictive draws of a conjugate model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
import ppl
from inference.predictive import chunked_map
from tests.inference import train_models as tm


@ppl.meta_bayesian_net
def build_new_points(n):
    """The conjugate model at n new points, with a deterministic node."""
    bn = ppl.BayesianNet()
    mu = bn.normal("mu", jnp.zeros(()), std=tm.PRIOR_STD)
    bn.deterministic("mu_squared", mu ** 2)
    bn.normal("x", jnp.broadcast_to(mu, (n,)), std=tm.NOISE_STD, group_ndims=1)
    return bn


@pytest.fixture(scope="module")
def posterior():
    x = tm.data(jax.random.key(1))
    mean, std = tm.exact_posterior(x)
    draws = mean + std * jax.random.normal(jax.random.key(2), (4, 2000))    # exact, independent draws
    return mean, std, {"mu": draws}


def assert_normal(draws, mean, var):
    # Independent draws: the sample mean has sd sqrt(var / n) and the sample variance sd
    # var sqrt(2 / (n - 1)) (normal data); |z| < 4 fails by chance with probability 6e-5 each.
    draws = np.asarray(draws).ravel()
    n = draws.size
    assert abs(draws.mean() - mean) / np.sqrt(var / n) < 4
    assert abs(draws.var(ddof=1) - var) / (var * np.sqrt(2 / (n - 1))) < 4


def test_posterior_predictive_matches_the_analytic_one(posterior):
    mean, std, samples = posterior
    draws = inference.predictive(jax.random.key(3), build_new_points(3), samples=samples)
    assert set(draws) == {"mu_squared", "x"}                          # not the given latent
    assert draws["x"].shape == (4, 2000, 3) and draws["mu_squared"].shape == (4, 2000)
    np.testing.assert_allclose(draws["mu_squared"], samples["mu"] ** 2, rtol=1e-6)
    assert_normal(draws["x"][..., 0], mean, std**2 + tm.NOISE_STD**2)    # posterior predictive N(m, s^2 + 1)
    residual = draws["x"] - samples["mu"][..., None]                    # the noise is independent of mu
    assert_normal(residual, 0.0, tm.NOISE_STD**2)


def test_chunks_give_the_same_draws_and_flat_samples_work(posterior):
    _, _, samples = posterior
    model = build_new_points(2)
    whole = inference.predictive(jax.random.key(4), model, samples=samples, return_nodes="x")
    chunked = inference.predictive(jax.random.key(4), model, samples=samples, return_nodes=["x"],
                                   chunk_size=777)
    np.testing.assert_array_equal(whole["x"], chunked["x"])
    flat = inference.predictive(jax.random.key(4), model, samples={"mu": samples["mu"].reshape(-1)},
                                return_nodes="x")
    np.testing.assert_array_equal(flat["x"], whole["x"].reshape(8000, 2))   # draw i uses fold_in(key, i)
    other = inference.predictive(jax.random.key(5), model, samples=samples, return_nodes="x")
    assert not np.array_equal(other["x"], whole["x"])


def test_chunked_map_computes_chunk_size_rows_at_a_time():
    xs = jnp.arange(10.0)
    jaxpr = jax.make_jaxpr(lambda xs: chunked_map(lambda x: x * 2, xs, chunk_size=4))(xs)
    scans = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
    assert len(scans) == 1 and scans[0].params["length"] == 3              # ceil(10 / 4) chunks
    assert scans[0].invars[-1].aval.shape == (3, 4)                        # of 4 rows each
    np.testing.assert_array_equal(chunked_map(lambda x: x * 2, xs, chunk_size=4), xs * 2)


def test_variational_and_prior_predictive(posterior):
    mean, std, _ = posterior
    q = tm.build_q({"mean": jnp.asarray(mean), "log_std": jnp.log(std)})
    draws = inference.predictive(jax.random.key(6), build_new_points(1), variational=q, n_samples=8000)
    assert draws["mu"].shape == (8000,) and draws["x"].shape == (8000, 1)
    assert_normal(draws["mu"], mean, std**2)
    assert_normal(draws["x"], mean, std**2 + tm.NOISE_STD**2)
    prior = inference.predictive(jax.random.key(7), build_new_points(1), n_samples=8000, chunk_size=1000)
    assert_normal(prior["mu"], 0.0, tm.PRIOR_STD**2)
    conditioned = inference.predictive(jax.random.key(8), build_new_points(2), {"x": jnp.zeros(2)},
                                       n_samples=5)
    assert set(conditioned) == {"mu", "mu_squared"}                          # observed x is not redrawn


def test_mcmc_result_objects_are_accepted(posterior):
    _, _, samples = posterior

    class Result:                                       # anything with .samples, as MCMCResult has
        def __init__(self, samples):
            self.samples = samples
    draws = inference.predictive(jax.random.key(3), build_new_points(1), samples=Result(samples),
                                 return_nodes="x")
    assert draws["x"].shape == (4, 2000, 1)


@pytest.mark.parametrize("kwargs, match", [
    ({"samples": {"mu": jnp.zeros((4, 10, 2))}}, r"samples\['mu'\] has shape \(4, 10, 2\); expected"),
    ({"samples": {"mu": jnp.zeros(())}}, r"samples\['mu'\] has shape \(\)"),
    ({"samples": {"nu": jnp.zeros(10)}}, "the model has no such node"),
    ({"samples": {"mu_squared": jnp.zeros(10)}}, "node 'mu_squared' is deterministic"),
    ({"samples": {"x": jnp.zeros((10, 3))}}, "node 'x' is observed|given both in observed and in samples"),
    ({"samples": {"mu": jnp.zeros(10)}, "n_samples": 10}, "leave it None with samples"),
    ({"n_samples": 0}, "n_samples must be a positive int"),
    ({}, "n_samples must be a positive int"),
    ({"n_samples": 3, "chunk_size": 0}, "chunk_size must be a positive int"),
    ({"n_samples": 3, "return_nodes": ["y"]}, r"return_nodes \['y'\] are not nodes"),
    ({"samples": {"mu": jnp.zeros(3)}, "variational": tm.build_q(tm.init_params())}, "not both"),
    ({"samples": (jnp.zeros(3),)}, "samples must be a dict"),
])
def test_bad_inputs_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        inference.predictive(jax.random.key(0), build_new_points(3), {"x": jnp.zeros(3)}, **kwargs)


def test_mismatched_leading_axes_are_named():
    @ppl.meta_bayesian_net
    def two_latents():
        bn = ppl.BayesianNet()
        bn.normal("a", 0.0, std=1.0)
        bn.normal("b", 0.0, std=1.0)
        return bn
    with pytest.raises(ValueError, match=r"samples\['b'\] has leading draw axes \(4, 9\)"):
        inference.predictive(jax.random.key(0), two_latents(), samples={"a": jnp.zeros((4, 10)),
                                                                         "b": jnp.zeros((4, 9))})
