"""Observed values are checked where they are concrete: NaN/inf is an error, an out-of-support value
a warning (or an error in strict mode, or nothing with "ignore"), a wrong dtype an error; each
message names the node and how many values are wrong. Traced observations (inside `jax.jit`) are not
checked and add nothing to the program.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import ppl


def _observe(method, args, value, **kwargs):
    bn = ppl.BayesianNet(observed={"v": value})
    getattr(bn, method)("v", *args, **kwargs)
    return bn


@pytest.mark.parametrize("bad, counts", [(np.nan, "2 NaN and 0 inf"), (np.inf, "0 NaN and 2 inf"),
                                         (-np.inf, "0 NaN and 2 inf")])
@pytest.mark.parametrize("container", [np.asarray, jnp.asarray], ids=["numpy", "jax"])
def test_non_finite_observation_is_an_error(bad, counts, container):
    value = container(np.array([0.5, bad, 1.0, bad], np.float32))
    with pytest.raises(ValueError, match=rf"node 'v': the observation holds {counts} values \(of 4\)\. "
                                         r"Missing data is masked explicitly, never by NaN"):
        _observe("normal", (0.,), value, std=1.)


def test_non_finite_closure_constant_is_checked_while_tracing():
    """A concrete observation inside a jitted function is still checked, once, at trace time."""
    x = np.array([1.0, np.nan], np.float32)
    with pytest.raises(ValueError, match=r"node 'v': the observation holds 1 NaN"):
        jax.jit(lambda: _observe("normal", (0.,), x, std=1.)["v"].log_prob)()


def test_traced_observations_are_not_checked_and_cost_nothing():
    """Under jit the observation is abstract: no check runs (a NaN goes through to the log-density,
    where the samplers' Info fields report it), and the traced program has no check in it: its
    jaxpr equals that of the log-density written by hand."""
    def log_prob(x):
        return _observe("gamma", (2., 1.), x)["v"].log_prob

    jaxpr = str(jax.make_jaxpr(log_prob)(np.ones(3, np.float32)))
    by_hand = str(jax.make_jaxpr(lambda x: dist.Gamma(2., 1.).log_prob(x))(np.ones(3, np.float32)))
    assert jaxpr == by_hand
    assert "is_finite" not in jaxpr
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = jax.jit(log_prob)(np.array([np.nan, -1., 1.], np.float32))
    assert not np.isfinite(out[0]) and np.isneginf(out[1]) and np.isfinite(out[2])


OUT_OF_SUPPORT = [
    ("gamma", (2., 1.), {}, np.array([1., -1., 0.5, -2.], np.float32), 2, 4),
    ("bernoulli", (), dict(logits=0.), np.array([0., 0.5, 1., 0.25], np.float32), 2, 4),
    ("dirichlet", (np.ones(3, np.float32),), {},
     np.array([[0.2, 0.3, 0.5], [0.5, 0.6, 0.1]], np.float32), 1, 2),
    ("categorical", (np.zeros(3, np.float32),), {}, np.array([0, 2, 5]), 1, 3),
]
IDS = [case[0] for case in OUT_OF_SUPPORT]


@pytest.mark.parametrize("method, args, kwargs, value, n_bad, n_all", OUT_OF_SUPPORT, ids=IDS)
def test_out_of_support_warns_by_default(method, args, kwargs, value, n_bad, n_all):
    with pytest.warns(ppl.OutOfSupportWarning, match=rf"node 'v': {n_bad} of {n_all} observed values lie "
                                                     r"outside the support") as record:
        _observe(method, args, value, **kwargs)
    assert record[0].filename == __file__        # the warning points at the user's line


@pytest.mark.parametrize("method, args, kwargs, value, n_bad, n_all", OUT_OF_SUPPORT, ids=IDS)
@pytest.mark.parametrize("how", ["context", "global", "model"])
def test_strict_mode_makes_it_an_error(method, args, kwargs, value, n_bad, n_all, how):
    def build():
        bn = ppl.BayesianNet()
        getattr(bn, method)("v", *args, **kwargs)
        return bn

    message = rf"node 'v': {n_bad} of {n_all} observed values lie outside the support"
    if how == "context":
        with ppl.out_of_support("error"), pytest.raises(ValueError, match=message):
            ppl.meta_bayesian_net(build)().observe(v=value)
    elif how == "global":
        previous = ppl.set_out_of_support("error")
        try:
            with pytest.raises(ValueError, match=message):
                ppl.meta_bayesian_net(build)().observe(v=value)
        finally:
            assert ppl.set_out_of_support(previous) == "error"
    else:
        with pytest.raises(ValueError, match=message):
            ppl.meta_bayesian_net(out_of_support="error")(build)().observe(v=value)


def test_ignore_mode_and_model_mode_wins():
    grey = np.array([0.2, 0.7, 1.0], np.float32)        # grey-level pixels in a Bernoulli, on purpose

    @ppl.meta_bayesian_net(out_of_support="ignore")
    def pixels():
        bn = ppl.BayesianNet()
        bn.bernoulli("x", logits=jnp.zeros(3))
        return bn

    with warnings.catch_warnings(), numpyro.validation_enabled(False):
        warnings.simplefilter("error")
        with ppl.out_of_support("error"):                   # the model's own mode is more specific
            bn = pixels().observe(x=grey)
        with ppl.out_of_support("ignore"):
            _observe("bernoulli", (), grey, logits=0.)
        # with numpyro's validation off too, the value is ZhuSuan's x log p + (1 - x) log(1 - p)
        expected = grey * np.log(0.5) + (1 - grey) * np.log(0.5)
        np.testing.assert_allclose(bn["x"].log_prob, expected, rtol=1e-6)
    assert ppl.get_out_of_support() == "warn"                # blocks restore the setting
    with pytest.raises(ValueError, match=r"out_of_support must be one of \('warn', 'error', 'ignore'\)"):
        ppl.set_out_of_support("strict")
    with pytest.raises(ValueError, match="out_of_support must be one of"):
        ppl.meta_bayesian_net(out_of_support="loud")


def test_masked_placeholders_are_not_out_of_support():
    """The recommended way to handle missing data: a finite placeholder, masked out."""
    x = np.array([1.5, 0., 2.], np.float32)                  # x[1] is missing; 0 is outside (0, inf)
    is_present = np.array([True, False, True])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn = ppl.BayesianNet(observed={"x": x})
        bn.stochastic("x", dist.Gamma(2., 1.).mask(is_present))
        log_prob = bn["x"].log_prob
    np.testing.assert_allclose(log_prob, np.where(is_present, dist.Gamma(2., 1.).log_prob(x), 0.), rtol=1e-6)
    with pytest.warns(ppl.OutOfSupportWarning, match="node 'x': 1 of 3"):
        ppl.BayesianNet(observed={"x": x}).stochastic("x", dist.Gamma(2., 1.).mask(np.ones(3, bool)))


@pytest.mark.parametrize("method, args, kwargs, value", [
    ("gamma", (2., 1.), {}, np.array([1., 0.5], np.float32)),
    ("bernoulli", (), dict(logits=0.), np.array([0, 1])),
    ("dirichlet", (np.ones(100, np.float32),), {}, np.full(100, 0.01, np.float32)),  # float32 sum
    ("categorical", (np.zeros(3, np.float32),), {}, np.array([0, 2])),
    ("onehot_categorical", (np.zeros(3, np.float32),), {}, np.eye(3, dtype=np.int32)),
])
def test_valid_observations_do_not_warn(method, args, kwargs, value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _observe(method, args, value, **kwargs)


def test_numpyro_validation_still_works():
    """With numpyro's own validation on (its default), valid observations pass silently, and an
    out-of-support one gets our warning and still numpyro's -inf mask (which we leave alone)."""
    with numpyro.validation_enabled(True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bn = _observe("gamma", (2., 1.), np.array([1., 0.5], np.float32))
            assert bn["v"].log_prob.shape == (2,)
        with pytest.warns(ppl.OutOfSupportWarning, match="node 'v': 1 of 2"):
            bn = _observe("gamma", (2., 1.), np.array([1., -0.5], np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.isneginf(bn["v"].log_prob[1])


@pytest.mark.parametrize("value, message", [
    (np.array(["a", "b"]), r"node 'v': observation of non-numeric dtype <U1"),
    (np.array([1 + 2j]), r"node 'v': observation has complex dtype complex"),
])
def test_observation_dtype_errors_name_the_node(value, message):
    with pytest.raises(TypeError, match=message):
        _observe("normal", (0.,), value, std=1.)


def test_float_categorical_needs_a_float_dtype():
    with pytest.raises(TypeError, match=r"node 'v': CategoricalLogits takes integer category indices"):
        _observe("categorical", (np.zeros(3, np.float32),), np.array([0., 2.], np.float32))
    bn = _observe("categorical", (np.log(np.array([0.2, 0.3, 0.5], np.float32)),),
                  np.array([0., 2.], np.float32), dtype=jnp.float32)
    np.testing.assert_allclose(bn["v"].log_prob, np.log([0.2, 0.5]), rtol=1e-6)
