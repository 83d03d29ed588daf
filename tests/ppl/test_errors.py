"""Every error the DSL raises names the node (and the shapes, where shapes are the problem).

The checks are static (shapes, dtypes, names), so most tests run the model under `jax.eval_shape`:
traced, never compiled, which keeps them fast. Inputs are numpy arrays for the same reason.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import ppl


@ppl.meta_bayesian_net
def build_model(n=3, n_particles=None):
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros([n, 2]), std=1., group_ndims=1, n_samples=n_particles)
    bn.deterministic("mean", z)
    bn.normal("x", z, std=0.5, group_ndims=1)
    return bn


def test_observing_unknown_name_lists_nodes(key):
    with pytest.raises(ValueError) as info:
        jax.eval_shape(lambda: build_model().observe(key, x=np.zeros([3, 2]), y=np.zeros(3)))
    message = str(info.value)
    assert "'y'" in message and "build_model" in message
    assert "['z', 'mean', 'x']" in message


def test_observing_deterministic_node_raises(key):
    with pytest.raises(ValueError, match=r"node 'mean' is deterministic and cannot be observed"):
        jax.eval_shape(lambda: build_model().observe(key, mean=np.zeros([3, 2])))


@pytest.mark.parametrize("n_particles, shape, expected", [
    (None, (4, 2), (3, 2)),          # batch mismatch
    (None, (3, 5), (3, 2)),          # last axis mismatch
    (10, (7, 3, 2), (10, 3, 2)),     # n_samples axis mismatch
])
def test_observation_shape_must_broadcast(key, n_particles, shape, expected):
    with pytest.raises(ValueError) as info:
        jax.eval_shape(lambda: build_model(n_particles=n_particles).observe(key, z=np.zeros(shape)))
    message = str(info.value)
    assert "node 'z'" in message
    assert str(shape) in message and str(expected) in message
    assert "n_samples + batch_shape + event_shape" in message


def test_broadcastable_observations_are_accepted(key):
    # a shared observation for every particle, and extra leading particle axes, both broadcast
    def shapes(n_particles, z):
        bn = build_model(n_particles=n_particles).observe(key, z=z)
        return bn["z"].log_prob, bn.log_joint()

    assert [a.shape for a in jax.eval_shape(lambda: shapes(10, np.zeros([3, 2])))] == [(3,), (3,)]
    assert [a.shape for a in jax.eval_shape(lambda: shapes(None, np.zeros([10, 3, 2])))] == [(10, 3), (10, 3)]


def test_wrong_event_shape(key):
    bn = ppl.BayesianNet(observed={"v": np.zeros([4, 1])}, key=key)
    with pytest.raises(ValueError) as info:
        jax.eval_shape(lambda: bn.multivariate_normal_cholesky("v", np.zeros([4, 3]), np.eye(3)))
    message = str(info.value)
    assert "node 'v'" in message and "(4, 1)" in message and "event shape (3,)" in message
    bn = ppl.BayesianNet(observed={"v": np.zeros(())})
    with pytest.raises(ValueError, match=r"node 'v'.*\(\).*event shape \(2,\)"):
        jax.eval_shape(lambda: bn.dirichlet("v", np.ones(2)))


@pytest.mark.parametrize("method, args, value, message", [
    ("categorical", (np.zeros(3),), jnp.array(1.), r"node 'v'.*integer category indices.*float32"),
    ("categorical", (np.zeros(3),), jnp.array(1 + 0j), r"node 'v'.*complex"),
    ("normal", (0.,), jnp.array(1 + 2j), r"node 'v'.*complex dtype complex64"),
    ("bernoulli", (0.,), jnp.array(1 + 0j), r"node 'v'.*complex"),
])
def test_observation_of_wrong_kind(method, args, value, message):
    bn = ppl.BayesianNet(observed={"v": value})
    kwargs = {"std": 1.} if method == "normal" else {}
    with pytest.raises(TypeError, match=message):
        jax.eval_shape(lambda: getattr(bn, method)("v", *args, **kwargs))


def test_categorical_accepts_integer_observation():
    def log_prob(value):
        bn = ppl.BayesianNet(observed={"v": value})
        bn.categorical("v", jnp.log(jnp.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])))
        return bn["v"].log_prob

    np.testing.assert_allclose(jax.jit(log_prob)(np.array([0, 2])), np.log([0.2, 0.5]), rtol=1e-6)


def test_duplicate_node_names(key):
    bn = ppl.BayesianNet(key=key)
    jax.eval_shape(lambda: bn.normal("z", 0., std=1.))
    with pytest.raises(ValueError, match=r"duplicate node name 'z'"):
        jax.eval_shape(lambda: bn.bernoulli("z", logits=0.))
    with pytest.raises(ValueError, match=r"duplicate node name 'z'"):
        bn.deterministic("z", 1.)


def test_node_name_must_be_a_string(key):
    with pytest.raises(TypeError, match=r"node name must be a str.*3"):
        jax.eval_shape(lambda: ppl.BayesianNet(key=key).normal(3, 0., std=1.))


def test_sampled_node_without_key_names_the_node():
    with pytest.raises(ValueError, match=r"node 'z' is not observed and must be sampled, but no key"):
        jax.eval_shape(lambda: build_model().observe(x=np.zeros([3, 2])))


@pytest.mark.parametrize("method, kwargs, message", [
    ("normal", dict(mean=0., std=1., logstd=0.), "exactly one of `std` or `logstd`.*both"),
    ("normal", dict(mean=0.), "exactly one of `std` or `logstd`.*neither"),
    ("fold_normal", dict(mean=0., std=1., logstd=0.), "exactly one of `std` or `logstd`.*both"),
    ("bernoulli", dict(logits=0., probs=0.5), "exactly one of `logits` or `probs`.*both"),
    ("bernoulli", dict(), "exactly one of `logits` or `probs`.*neither"),
    ("categorical", dict(logits=np.zeros(2), probs=np.ones(2) / 2), "`logits` or `probs`.*both"),
    ("onehot_categorical", dict(), "`logits` or `probs`.*neither"),
    ("concrete", dict(temperature=1.), "`logits` or `probs`.*neither"),
    ("binomial", dict(logits=0.), "`n_experiments` must be given"),
    ("multinomial", dict(logits=np.zeros(3)), "`n_experiments` must be given"),
])
def test_parameterisation_errors_name_the_node(key, method, kwargs, message):
    bn = ppl.BayesianNet(key=key)
    with pytest.raises(ValueError, match=rf"node 'v' \({method}\): .*{message}"):
        jax.eval_shape(lambda: getattr(bn, method)("v", **kwargs))


def test_group_ndims_larger_than_batch_rank(key):
    bn = ppl.BayesianNet(key=key)
    with pytest.raises(ValueError, match=re.escape("node 'z': group_ndims=3 exceeds the rank of its "
                                                   "batch shape (4, 2)")):
        jax.eval_shape(lambda: bn.normal("z", np.zeros([4, 2]), std=1., group_ndims=3))
    # event axes do not count: a [4, 3] multivariate normal has batch rank 1
    with pytest.raises(ValueError, match=re.escape("group_ndims=2 exceeds the rank of its batch shape (4,)")):
        jax.eval_shape(lambda: bn.multivariate_normal_cholesky("w", np.zeros([4, 3]), np.eye(3),
                                                               group_ndims=2))
    with pytest.raises(ValueError, match=r"node 'u': group_ndims must be a non-negative int, got -1"):
        jax.eval_shape(lambda: bn.normal("u", np.zeros(2), std=1., group_ndims=-1))


@pytest.mark.parametrize("n_samples", [0, -2, 2.5, "3", True])
def test_bad_n_samples(key, n_samples):
    bn = ppl.BayesianNet(key=key)
    with pytest.raises(ValueError, match=rf"node 'z': n_samples must be a positive int or None, got "
                                         rf"{re.escape(repr(n_samples))}"):
        jax.eval_shape(lambda: bn.normal("z", 0., std=1., n_samples=n_samples))


def test_numpy_int_n_samples_is_accepted(key):
    bn = ppl.BayesianNet(key=key)
    assert jax.eval_shape(lambda: bn.normal("z", 0., std=1., n_samples=np.int64(3))).shape == (3,)
    assert bn["z"].n_samples == 3 and type(bn["z"].n_samples) is int


def test_stochastic_needs_a_numpyro_distribution(key):
    with pytest.raises(TypeError, match=r"node 'z': expected a numpyro Distribution, got tuple"):
        ppl.BayesianNet(key=key).stochastic("z", (0., 1.))


def test_builder_must_return_a_bayesian_net(key):
    @ppl.meta_bayesian_net
    def forgets_to_return():
        bn = ppl.BayesianNet()
        bn.normal("z", 0., std=1.)

    with pytest.raises(TypeError, match=r"builder 'forgets_to_return' must return a ppl.BayesianNet, "
                                        r"got NoneType"):
        jax.eval_shape(lambda: forgets_to_return().observe(key))


def test_unknown_node_lookup_lists_nodes(key):
    with pytest.raises(KeyError, match=r"no node named 'w'.*\['z', 'mean', 'x'\]"):
        jax.eval_shape(lambda: build_model().observe(key)["w"])
    with pytest.raises(TypeError, match=r"node 'mean' is deterministic and has no log-density"):
        jax.eval_shape(lambda: build_model().observe(key).cond_log_prob("mean"))


def test_unnormalized_multinomial_cannot_be_sampled(key):
    with pytest.raises(NotImplementedError, match="cannot be sampled"):
        jax.eval_shape(lambda: ppl.BayesianNet(key=key).unnormalized_multinomial("x", np.zeros(3)))


def test_error_raised_under_jit_at_trace_time(key):
    """Shape checks are static, so they fire while tracing, before anything runs."""

    @jax.jit
    def run(z):
        return build_model().observe(key, z=z).log_joint()

    with pytest.raises(ValueError, match=r"node 'z'.*\(4, 2\).*\(3, 2\)"):
        run(np.zeros([4, 2]))


def test_error_message_wraps_constructor_errors(key):
    # numpyro's own argument errors are re-raised naming the node and the helper
    bn = ppl.BayesianNet(key=key)
    with pytest.raises(ValueError, match=r"node 'c' \(concrete\): `logits` must have at least one axis"):
        jax.eval_shape(lambda: bn.concrete("c", 1., np.array(0.)))
    with pytest.raises(ValueError, match=r"node 'n' \(normal\)"):
        jax.eval_shape(lambda: bn.normal("n", np.zeros(2), std=np.ones(3)))


class _ProjectedNormal(dist.Distribution):
    """A user-written distribution with a bug: `log_prob` projects the value onto a weight vector
    of the wrong length, so computing it fails inside numpy/JAX with a message that names no node."""

    support = dist.constraints.real_vector

    def __init__(self, weights):
        self.weights = weights
        super().__init__(batch_shape=(), event_shape=(3,))

    def sample(self, key, sample_shape=()):
        return jax.random.normal(key, sample_shape + (3,))

    def log_prob(self, value):
        return -0.5 * (value @ self.weights) ** 2


def test_log_prob_errors_name_the_node(key):
    bn = ppl.BayesianNet(observed={"y": np.zeros([5, 3], np.float32)}, key=key)
    bn.stochastic("y", _ProjectedNormal(jnp.ones(4)))
    with pytest.raises(TypeError, match=r"node 'y': log_prob of _ProjectedNormal \(batch_shape \(\), "
                                        r"event_shape \(3,\)\) failed on a value of shape \(5, 3\) and "
                                        r"dtype float32: dot_general"):
        bn.log_joint()


def test_log_joint_broadcast_errors_name_the_nodes(key):
    bn = ppl.BayesianNet(key=key)
    jax.eval_shape(lambda: bn.normal("z", jnp.zeros(2), std=1., n_samples=10))
    jax.eval_shape(lambda: bn.normal("w", jnp.zeros(5), std=1.))
    with pytest.raises(ValueError, match=r"log_joint: the log-densities of the nodes do not broadcast "
                                         r"together: 'z' \(10, 2\), 'w' \(5,\)"):
        jax.eval_shape(bn.log_joint)


@pytest.mark.parametrize("make, message", [
    (lambda: ppl.BayesianNet(key=jax.random.key(0)).normal("z", 0., std=1., dtype=jnp.int32),
     r"node 'z': dtype= applies to discrete distributions"),
    (lambda: ppl.distributions.Gamma(1., 1., dtype=jnp.float32), r"Gamma: dtype= applies to discrete"),
    (lambda: ppl.distributions.Normal(0.), r"Normal: exactly one of `std` or `logstd`"),
    (lambda: ppl.distributions.Normal(np.zeros(2), std=1., group_ndims=2),
     r"Normal: group_ndims=2 exceeds the rank of its batch shape \(2,\)"),
    (lambda: ppl.distributions.Bernoulli(0., is_reparameterized=True),
     r"Bernoulli: BernoulliLogits has no reparameterised sampler"),
])
def test_distribution_option_errors(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()
