"""DSL semantics of `ppl.BayesianNet`: shapes, observed vs sampled, deterministic nodes, queries,
the default log-joint, key determinism and the gradient switches.

Most test bodies run under one `jax.jit` (shape assertions hold while tracing; values come back out
for comparison) or `jax.eval_shape` (nothing compiled): a single compilation per test instead of one
per eager operation keeps the suite fast, and tests that need no randomness observe their values
rather than sample them. The eager path is covered too (`test_eager_*`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import ppl

RNG = np.random.default_rng(7)


def test_eager_shapes_and_records(key):
    bn = ppl.BayesianNet(key=key)
    z = bn.normal("z", jnp.zeros([4, 3]), std=1.)
    assert isinstance(z, jax.Array)
    assert z.shape == (4, 3)
    assert bn["z"].value is z
    assert bn["z"].log_prob.shape == (4, 3)
    assert bn["z"].n_samples is None and bn["z"].group_ndims == 0
    assert not bn["z"].is_observed and bn["z"].is_reparameterized
    assert bn.log_joint().shape == (4, 3)
    np.testing.assert_allclose(bn.log_joint(), -0.5 * np.log(2 * np.pi) - 0.5 * np.asarray(z)**2, rtol=1e-6)


def test_shapes_with_n_samples_and_group_ndims(key):
    def build(key):
        bn = ppl.BayesianNet(key=key)
        z = bn.normal("z", jnp.zeros([4, 3]), std=1., group_ndims=1, n_samples=7)
        assert z.shape == (7, 4, 3)
        assert bn["z"].n_samples == 7 and bn["z"].group_ndims == 1
        assert bn["z"].log_prob.shape == (7, 4)
        assert bn.log_joint().shape == (7, 4)
        bn.normal("w", jnp.zeros([4, 3]), std=1., group_ndims=2, n_samples=7)
        assert bn["w"].log_prob.shape == (7,)
        # event axes are always summed by the distribution; group_ndims adds batch axes
        p = bn.stochastic("p", dist.Normal(jnp.zeros([2, 5, 3]), 1.).to_event(1), group_ndims=1, n_samples=4)
        assert p.shape == (4, 2, 5, 3)
        assert bn["p"].log_prob.shape == (4, 2)
        return z

    jax.eval_shape(build, key)      # shapes are static: traced, nothing compiled


def test_group_ndims_sums_rightmost_batch_axes():
    """Checked on observed values (log N(v; 0, 1) in numpy), so nothing needs sampling."""
    w = RNG.normal(size=(7, 4, 3)).astype(np.float32)
    p = RNG.normal(size=(4, 2, 5, 3)).astype(np.float32)

    @jax.jit
    def body(w, p):
        bn = ppl.BayesianNet(observed={"w": w, "p": p})
        bn.normal("w", jnp.zeros([4, 3]), std=1., group_ndims=2, n_samples=7)
        bn.stochastic("p", dist.Normal(jnp.zeros([2, 5, 3]), 1.).to_event(1), group_ndims=1, n_samples=4)
        return bn["w"].log_prob, bn["p"].log_prob

    log_w, log_p = body(w, p)
    log_normal = -0.5 * np.log(2 * np.pi) - 0.5 * np.square(np.float64(w))
    np.testing.assert_allclose(log_w, np.sum(log_normal, axis=(1, 2)), rtol=1e-5)
    log_normal = -0.5 * np.log(2 * np.pi) - 0.5 * np.square(np.float64(p))
    np.testing.assert_allclose(log_p, np.sum(log_normal, axis=(2, 3)), rtol=1e-5)


def test_observed_value_used_as_given(key):
    x = jnp.array([[0.5, -1.0, 2.0]])

    @jax.jit
    def body(key, x):
        bn = ppl.BayesianNet(observed={"x": x}, key=key)
        z = bn.normal("z", jnp.zeros(3), std=1., n_samples=5)
        value = bn.normal("x", z, std=0.5, group_ndims=1)
        assert not bn["z"].is_observed and bn["x"].is_observed
        assert value is x and bn["x"].value is x
        assert bn["x"].log_prob.shape == (5,)
        assert set(bn.latent_nodes()) == {"z"}
        assert set(bn.stochastic_nodes()) == {"z", "x"}
        assert set(bn.observed) == {"x"}
        return bn["x"].log_prob, jnp.sum(dist.Normal(z, 0.5).log_prob(x), axis=-1)

    log_prob, expected = body(key, x)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-6)


def test_eager_observed_int_for_continuous_node_is_cast_to_float():
    # and an all-observed net needs no key
    bn = ppl.BayesianNet(observed={"x": np.array([1, 2])})
    x = bn.normal("x", 0., std=1.)
    assert jnp.issubdtype(x.dtype, jnp.floating)
    expected = -0.5 * np.log(2 * np.pi) - 0.5 * np.array([1., 4.])
    np.testing.assert_allclose(bn["x"].log_prob, expected, rtol=1e-6)


def test_deterministic_node():
    @jax.jit
    def body(z):
        bn = ppl.BayesianNet(observed={"z": z})
        bn.normal("z", jnp.zeros(3), std=1.)
        h = bn.deterministic("h", 2. * z + 1.)
        record = bn["h"]
        assert isinstance(record, ppl.DeterministicTensor)
        assert record.name == "h" and record.value is h
        assert set(bn.stochastic_nodes()) == {"z"} and not bn.latent_nodes()
        assert list(bn) == ["z", "h"] and len(bn) == 2 and "h" in bn and "q" not in bn
        assert isinstance(bn.deterministic("c", [1., 2.]), jax.Array)      # python values accepted
        return h, bn.log_joint(), bn["z"].log_prob

    z = np.array([0.5, -1., 2.], np.float32)
    h, log_joint, log_prob_z = body(z)
    np.testing.assert_allclose(h, 2. * z + 1., rtol=1e-6)
    np.testing.assert_array_equal(log_joint, log_prob_z)    # deterministic nodes add nothing


def test_get_and_cond_log_prob_one_and_list():
    z = RNG.normal(size=(4, 2, 3)).astype(np.float32)
    x = RNG.integers(0, 2, size=(2, 3))

    @jax.jit
    def body(z, x):
        bn = ppl.BayesianNet(observed={"z": z, "x": x})
        bn.normal("z", jnp.zeros([2, 3]), std=1., group_ndims=1, n_samples=4)
        bn.bernoulli("x", logits=z, group_ndims=1)
        bn.deterministic("c", 3.)
        assert bn.get("z") is bn["z"]
        assert [r.name for r in bn.get(["x", "z", "c"])] == ["x", "z", "c"]
        assert bn.get(["x"])[0] is bn["x"]
        assert bn.cond_log_prob("z") is bn["z"].log_prob
        log_z, log_x = bn.cond_log_prob(["z", "x"])
        assert log_z is bn["z"].log_prob and log_x is bn["x"].log_prob
        assert log_z.shape == log_x.shape == (4, 2)
        return log_z, log_x

    log_z, log_x = body(z, x)
    z64 = np.float64(z)
    np.testing.assert_allclose(log_z, np.sum(-0.5 * np.log(2 * np.pi) - 0.5 * z64**2, -1), rtol=1e-5)
    log_bernoulli = x * -np.logaddexp(0, -z64) + (1 - x) * -np.logaddexp(0, z64)
    np.testing.assert_allclose(log_x, np.sum(log_bernoulli, -1), rtol=1e-5)


def test_log_joint_broadcasts_right_aligned():
    """log-probs of shapes [], [6] and [5, 6] add with right-aligned broadcasting to [5, 6]."""
    values = {"w": RNG.normal(size=3), "b": RNG.normal(size=6), "z": RNG.normal(size=(5, 6, 1)),
              "x": RNG.normal(size=(6, 3))}

    @jax.jit
    def body(values):
        bn = ppl.BayesianNet(observed=values)
        w = bn.normal("w", jnp.zeros(3), std=1., group_ndims=1)                    # log_prob []
        b = bn.normal("b", jnp.zeros(6), std=1.)                                   # log_prob [6]
        z = bn.normal("z", jnp.zeros([6, 1]), std=1., group_ndims=1, n_samples=5)  # log_prob [5, 6]
        bn.normal("x", w + b[:, None] + z, std=1., group_ndims=1)                  # log_prob [5, 6]
        assert [bn[n].log_prob.shape for n in "wbzx"] == [(), (6,), (5, 6), (5, 6)]
        assert bn.log_joint().shape == (5, 6)
        expected = bn["w"].log_prob + bn["b"].log_prob[None, :] + bn["z"].log_prob + bn["x"].log_prob
        return bn.log_joint(), bn.default_log_joint(), expected

    log_joint, default, expected = body({k: v.astype(np.float32) for k, v in values.items()})
    np.testing.assert_allclose(log_joint, expected, rtol=1e-6)
    np.testing.assert_allclose(default, expected, rtol=1e-6)
    assert ppl.BayesianNet().log_joint().shape == ()          # an empty net: log p = 0


def test_same_key_same_samples_and_new_nodes_change_nothing():
    """Each node draws with node_key(key, name): the same key gives the same samples, and adding
    nodes (before or after) leaves every other node's sample unchanged."""
    @jax.jit
    def body(key):
        small = ppl.BayesianNet(key=key)
        small.normal("a", jnp.zeros(4), std=1.)
        small.bernoulli("c", logits=jnp.zeros(4))
        big = ppl.BayesianNet(key=key)
        big.normal("new", jnp.zeros(4), std=1.)            # added before the others
        big.normal("a", jnp.zeros(4), std=1.)
        big.uniform("other", 0., 1.)
        big.bernoulli("c", logits=jnp.zeros(4))
        by_hand = dist.Normal(jnp.zeros(4), 1.).sample(ppl.node_key(key, "a"))
        return small["a"].value, small["c"].value, big["a"].value, big["c"].value, big["new"].value, by_hand

    a1, c1, a2, c2, new, by_hand = body(jax.random.key(3))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(a2, by_hand)
    assert not np.array_equal(a2, new)                    # different names, different draws
    again = body(jax.random.key(3))
    np.testing.assert_array_equal(again[0], a1)
    other = body(jax.random.key(4))
    assert not np.array_equal(other[0], a1)


def test_is_reparameterized_false_stops_gradient(key):
    def total(mean, is_reparameterized):
        bn = ppl.BayesianNet(key=key)
        z = bn.normal("z", mean, std=1., is_reparameterized=is_reparameterized)
        assert bn["z"].is_reparameterized == is_reparameterized
        return jnp.sum(z)

    @jax.jit
    def body(mean):
        return jax.grad(total)(mean, True), jax.grad(total)(mean, False)

    with_path, without_path = body(np.zeros(3))
    np.testing.assert_allclose(with_path, np.ones(3))
    np.testing.assert_array_equal(without_path, np.zeros(3))
    bn = ppl.BayesianNet(key=key)
    jax.eval_shape(lambda: bn.bernoulli("b", logits=0.))
    assert not bn["b"].is_reparameterized   # default: the distribution's has_rsample


def test_is_reparameterized_true_for_discrete_raises(key):
    bn = ppl.BayesianNet(key=key)
    with pytest.raises(TypeError, match=r"node 'b'.*Bernoulli.*reparameteri"):
        jax.eval_shape(lambda: bn.bernoulli("b", logits=0., is_reparameterized=True))
    with pytest.raises(TypeError, match=r"node 'k'.*Poisson"):
        jax.eval_shape(lambda: bn.stochastic("k", dist.Poisson(3.), is_reparameterized=True))


def test_use_path_derivative_keeps_only_pathwise_gradient(key):
    """z = mean + std * eps. The total d/dmean log N(z; mean, std) is 0 (the two paths cancel);
    with stopped parameters only the pathwise term -(z - mean) / std^2 = -eps / std remains, and for an
    observed value (no path) the gradient is exactly 0. All exact up to float32 rounding."""
    std = 2.

    def log_prob(mean, use_path_derivative, observed):
        bn = ppl.BayesianNet(observed=observed, key=key)
        bn.normal("z", mean, std=std, use_path_derivative=use_path_derivative)
        assert bn["z"].use_path_derivative == use_path_derivative
        return jnp.sum(bn["z"].log_prob), bn["z"].value

    @jax.jit
    def body(mean):
        grads = {}
        for stl in (False, True):
            for observed in ({}, {"z": np.array([1., 2., 3.], np.float32)}):
                grads[stl, bool(observed)], z = jax.grad(log_prob, has_aux=True)(mean, stl, observed)
        return grads, jax.lax.stop_gradient(log_prob(mean, False, {})[1])

    mean = np.array([0.3, -1.2, 2.0], np.float32)
    grads, z = body(mean)
    np.testing.assert_allclose(grads[False, False], np.zeros(3), atol=1e-6)
    np.testing.assert_allclose(grads[True, False], -(np.asarray(z) - mean) / std**2, rtol=1e-5)
    np.testing.assert_array_equal(grads[True, True], np.zeros(3))
    np.testing.assert_allclose(grads[False, True], (np.array([1., 2., 3.]) - mean) / std**2, rtol=1e-5)


def test_stochastic_accepts_any_numpyro_distribution(key):
    distributions = {"cauchy": dist.Cauchy(jnp.zeros(2), 1.),
                     "independent": dist.Normal(jnp.zeros([2, 3]), 1.).to_event(1)}
    event_shapes = {"cauchy": (), "independent": (3,)}

    @jax.jit
    def body(key, distributions):
        bn = ppl.BayesianNet(key=key)
        out = {}
        for name, distribution in distributions.items():
            value = bn.stochastic(name, distribution, group_ndims=1, n_samples=4)
            assert value.shape == (4, 2, *event_shapes[name])
            assert bn[name].log_prob.shape == (4,)
            assert bn[name].distribution is distribution
            out[name] = bn[name].log_prob, jnp.sum(distribution.log_prob(value), -1)
        return out

    for name, (log_prob, expected) in body(key, distributions).items():
        np.testing.assert_allclose(log_prob, expected, rtol=1e-6, err_msg=name)


def test_repr_names_the_nodes(key):
    bn = ppl.BayesianNet(key=key)
    jax.eval_shape(lambda: bn.normal("z", 0., std=1.))
    assert "z" in repr(bn) and "sampled" in repr(bn["z"])
