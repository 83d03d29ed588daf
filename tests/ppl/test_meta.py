"""`meta_bayesian_net` / `MetaBayesianNet`: the decorator forms, `observe`, the log-joint override,
and jit of a function that builds and observes a model.

Test bodies run under `jax.jit` or `jax.eval_shape` (one compilation or none) to keep the suite fast;
the eager path is covered in test_bayesian_net.py and test_importance.py.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl


def _builder(n, n_particles=None):
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros([n, 2]), std=1., group_ndims=1, n_samples=n_particles)
    bn.normal("x", z, std=0.5, group_ndims=1)
    return bn


@pytest.mark.parametrize("decorate", [ppl.meta_bayesian_net, ppl.meta_bayesian_net()],
                         ids=["bare", "called"])
def test_decorator_forms(key, decorate):
    calls = []

    def builder(n, n_particles=None):
        calls.append(n)
        return _builder(n, n_particles)

    build = decorate(builder)
    assert build.__name__ == "builder"
    model = build(3, n_particles=4)
    assert isinstance(model, ppl.MetaBayesianNet)
    assert model.name == "builder" and "builder" in repr(model)
    assert calls == []                                    # nothing runs until observe

    def run(key):
        bn = model.observe(key)
        assert isinstance(bn, ppl.BayesianNet)
        return bn["z"].value, bn.log_joint()

    z, log_joint = jax.eval_shape(run, key)
    assert calls == [3]
    assert z.shape == (4, 3, 2) and log_joint.shape == (4, 3)


def test_observe_reruns_builder_with_new_observations(key):
    model = ppl.meta_bayesian_net(_builder)(3)

    @jax.jit
    def body(key, x, z):
        bn_x = model.observe(key, x=x)
        bn_zx = model.observe(x=x, z=z)                 # no key needed: nothing is sampled
        assert bn_x["x"].is_observed and not bn_x["z"].is_observed
        assert bn_zx["x"].is_observed and bn_zx["z"].is_observed
        assert bn_zx["z"].value is z
        return bn_x["z"].value, model.observe(key, x=x)["z"].value

    first, second = body(key, np.ones([3, 2]), np.zeros([3, 2]))
    np.testing.assert_array_equal(first, second)          # the same key gives the same samples


def test_observe_key_is_positional_only():
    parameters = inspect.signature(ppl.MetaBayesianNet.observe).parameters
    assert parameters["key"].kind is inspect.Parameter.POSITIONAL_ONLY

    # so a model may have a node called "key" and observe it by name
    @ppl.meta_bayesian_net
    def with_key_node():
        bn = ppl.BayesianNet()
        bn.normal("key", 0., std=1.)
        return bn

    def run(value):
        bn = with_key_node().observe(key=value)
        assert bn["key"].is_observed and bn["key"].value is value
        return bn.log_joint()

    assert jax.eval_shape(run, np.float32(0.5)).shape == ()


def test_log_joint_override_rescales_minibatch(key):
    """model.log_joint = fn replaces bn.log_joint() for every net the meta net builds."""
    n_data, batch = 100, 3
    default_model = ppl.meta_bayesian_net(_builder)(batch)
    scaled_model = ppl.meta_bayesian_net(_builder)(batch)
    scaled_model.log_joint = lambda bn: bn.cond_log_prob("z") + n_data / batch * bn.cond_log_prob("x")
    reset_model = ppl.meta_bayesian_net(_builder)(batch)
    reset_model.log_joint = scaled_model.log_joint
    reset_model.log_joint = None

    @jax.jit
    def body(key, x):
        default, scaled = default_model.observe(key, x=x), scaled_model.observe(key, x=x)
        expected = default["z"].log_prob + n_data / batch * default["x"].log_prob
        return (scaled.log_joint(), expected, scaled.default_log_joint(), default.log_joint(),
                reset_model.observe(key, x=x).log_joint())

    scaled, expected, scaled_default, default, reset = body(key, np.ones([batch, 2]))
    np.testing.assert_allclose(scaled, expected, rtol=1e-6)
    np.testing.assert_allclose(scaled_default, default, rtol=1e-6)
    np.testing.assert_allclose(reset, default, rtol=1e-6)
    assert not np.allclose(scaled, default)


def test_jit_of_a_function_that_builds_and_observes(key):
    """The whole build runs inside jit; the log-joint is checked against numpy on the returned z."""
    build = ppl.meta_bayesian_net(_builder)

    @jax.jit
    def log_joint(key, x):
        bn = build(3, n_particles=5).observe(key, x=x)
        return bn.log_joint(), bn["z"].value

    x = np.arange(6.).reshape(3, 2)
    jitted_log_joint, z = log_joint(key, x)
    assert jitted_log_joint.shape == (5, 3) and z.shape == (5, 3, 2)
    z = np.asarray(z, np.float64)
    log_normal = lambda v, mean, std: -0.5 * np.log(2 * np.pi * std**2) - 0.5 * ((v - mean) / std) ** 2
    expected = np.sum(log_normal(z, 0., 1.) + log_normal(x, z, 0.5), -1)
    np.testing.assert_allclose(jitted_log_joint, expected, rtol=1e-5)
    again, _ = log_joint(key, x)                      # same key, same result
    np.testing.assert_array_equal(again, jitted_log_joint)


def test_nets_do_not_leak_between_calls(key):
    """A BayesianNet created outside observe does not inherit a previous call's observations."""
    model = ppl.meta_bayesian_net(_builder)(3)
    jax.eval_shape(lambda: model.observe(key, x=np.ones([3, 2])).log_joint())
    bn = ppl.BayesianNet()
    assert bn.observed == {}
    with pytest.raises(ValueError, match="no key was given"):
        bn.normal("x", 0., std=1.)
