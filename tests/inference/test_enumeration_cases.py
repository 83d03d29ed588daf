"""Enumeration: the errors it raises (each names the node), one-hot and Bernoulli nodes in an M2-style
pair of builders, impossible values (q(y) = 0), float64, and the DSL pieces it rests on
(`ppl.substitute`, `BayesianNet.rebuild`, `support_values`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import inference
import ppl
from ppl.distributions import support_values
from tests.inference.enumeration_models import PARAMS, K, N, P, X, build_model, build_q, full

TOL = dict(rtol=1e-5, atol=1e-5)


def _elbo(key, **kwargs):
    """Traces (compiles nothing) the enumerated ELBO of the Gaussian model; errors surface as raised."""
    return jax.eval_shape(lambda: inference.elbo(build_model(PARAMS, P), {"x": X},
                                                 variational=build_q(PARAMS, P).observe(key), axis=0,
                                                 **kwargs).value)


@ppl.meta_bayesian_net
def _odd_model(kind):
    """The model with one extra node `extra` of the given kind, which the tests try to enumerate."""
    bn = ppl.BayesianNet()
    y = bn.categorical("y", logits=jnp.broadcast_to(PARAMS["prior"], (N, K)))
    if kind == "poisson":
        bn.poisson("extra", jnp.ones(N))
    elif kind == "normal":
        bn.normal("extra", jnp.zeros(N), std=1.0)
    elif kind == "grouped":
        bn.bernoulli("extra", logits=jnp.zeros([N, 3]), group_ndims=1)
    elif kind == "global":
        bn.bernoulli("extra", logits=0.3)
    elif kind == "deterministic":
        bn.deterministic("extra", y * 2)
    bn.normal("x", PARAMS["m"][y], std=1.0, group_ndims=1)
    return bn


@pytest.mark.parametrize("kind, message", [
    ("poisson", "node 'extra' follows Poisson, whose support is not finite"),
    ("normal", "node 'extra' follows Normal, a continuous distribution"),
    ("grouped", "node 'extra' sums 3 variables into one log-probability"),
    ("global", "node 'extra' (log-probability of shape ()) is shared by the 2 data points along axis 0"),
    ("deterministic", "node 'extra' is deterministic"),
    ("absent", "enumerate names 'absent', but the model has no such node"),
])
def test_what_cannot_be_enumerated(kind, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        name = "absent" if kind == "absent" else "extra"
        model = _odd_model(kind)
        jax.eval_shape(lambda: inference.elbo(model, {"x": X}, latent={}, enumerate=["y", name]).value)


def test_argument_errors(key):
    q = build_q(PARAMS, P).observe(key)
    with pytest.raises(ValueError, match="node 'x' is observed and cannot be enumerated"):
        _elbo(key, enumerate=["x"])
    with pytest.raises(ValueError, match="enumerate names \\['y'\\] more than once"):
        _elbo(key, enumerate=["y", "y"])
    with pytest.raises(TypeError, match="enumerate must be a node name or a list of names"):
        _elbo(key, enumerate=[0])
    with pytest.raises(ValueError, match="'y' is given in `latent=` as samples"):
        inference.elbo(build_model(PARAMS, P), {"x": X}, latent={name: (q[name].value, q[name].log_prob)
                                                                for name in ("y", "z")},
                       axis=0, enumerate="y")
    log_joint_fn = lambda values: build_model(PARAMS, P).observe(**values).log_joint()
    with pytest.raises(TypeError, match="needs the model as a ppl.MetaBayesianNet"):
        inference.elbo(log_joint_fn, {"x": X}, variational=q, axis=0, enumerate="y")
    def estimate(estimator):
        iw = inference.iw_objective(build_model(PARAMS, P), {"x": X}, variational=q, axis=0, enumerate="y")
        return getattr(iw, estimator)()

    for estimator in ("vimco", "dreg"):
        with pytest.raises(ValueError, match=f"{estimator} with enumerated latents \\['y'\\] of the"):
            jax.eval_shape(lambda estimator=estimator: estimate(estimator))
    with pytest.raises(ValueError, match="not made by MetaBayesianNet.observe"):
        jax.eval_shape(lambda: inference.elbo(build_model(PARAMS, with_z=False), {"x": X},
                                              variational=_direct_q(key), enumerate="y").value)


def _direct_q(key):
    bn = ppl.BayesianNet(key=key)
    bn.categorical("y", logits=PARAMS["phi"])
    return bn


def test_without_enumerate_an_empty_latent_is_still_an_error():
    with pytest.raises(ValueError, match="`latent` is empty"):
        inference.elbo(build_model(PARAMS, with_z=False), {"x": X}, latent={})


# ------------------------------------------------------------------ an M2-style pair of builders
@ppl.meta_bayesian_net
def m2_model(params, n, n_particles=None):
    """p(y) uniform one-hot, p(z) normal, p(x | y, z) Bernoulli: Kingma et al.'s M2."""
    bn = ppl.BayesianNet()
    y = bn.onehot_categorical("y", logits=jnp.zeros([n, K]), n_samples=n_particles)
    z = bn.normal("z", jnp.zeros([n, 2]), std=1.0, group_ndims=1, n_samples=n_particles)
    h = jnp.concatenate([z, jnp.broadcast_to(y, z.shape[:-1] + (K,)).astype(z.dtype)], -1)
    bn.bernoulli("x", logits=h @ params["decoder"], group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def m2_q(params, x, n_particles=None):
    """q(y | x) a classifier, q(z | x, y) from x and the one-hot y side by side."""
    bn = ppl.BayesianNet()
    y = bn.onehot_categorical("y", logits=x @ params["classifier"])
    h = jnp.concatenate([x, y.astype(x.dtype)], -1) @ params["encoder"]
    bn.normal("z", h[..., :2], logstd=h[..., 2:], group_ndims=1, n_samples=n_particles)
    return bn


def test_m2_unlabelled_bound_with_one_hot_labels(key):
    """The builders concatenate the one-hot y with x (or z) as for labelled data; enumerated, y takes
    each one-hot value in turn (`values` is the identity), and the bound equals the loop over
    labels, observing y in both nets."""
    rng = np.random.RandomState(1)
    params = {"decoder": jnp.asarray(rng.randn(2 + K, 5), jnp.float32),
              "classifier": jnp.asarray(rng.randn(5, K), jnp.float32),
              "encoder": jnp.asarray(0.3 * rng.randn(5 + K, 4), jnp.float32)}
    x = jnp.asarray(rng.rand(N, 5) > 0.5, jnp.float32)

    def both(p):
        lb = inference.elbo(m2_model(p, N, P), {"x": x}, variational=m2_q(p, x, P).observe(key), axis=0,
                            enumerate="y")
        terms = []
        for k in range(K):
            y = jnp.broadcast_to(jax.nn.one_hot(k, K, dtype=jnp.int32), (N, K))
            q = m2_q(p, x, P).observe(key, y=y)
            log_joint = m2_model(p, N, P).observe(x=x, y=y, z=q["z"].value).log_joint()
            terms.append(jnp.exp(q["y"].log_prob) * (log_joint - q["z"].log_prob - q["y"].log_prob))
        return lb.value, jnp.mean(sum(terms), 0), lb.enumerated["y"].values

    value, loop, values = jax.jit(both)(params)
    np.testing.assert_allclose(value, loop, **TOL)
    np.testing.assert_array_equal(values, np.eye(K))


@ppl.meta_bayesian_net
def _bernoulli_model(p_logit):
    bn = ppl.BayesianNet()
    c = bn.bernoulli("c", logits=p_logit * jnp.ones(N), dtype=jnp.float32)
    bn.normal("x", jnp.stack([c, -c], -1), std=1.0, group_ndims=1)
    return bn


def test_bernoulli_node_with_float_dtype():
    """A Bernoulli node held as floats is enumerated at 0. and 1.: log p(x) is the two-term sum."""
    def both(p_logit):
        lb = inference.elbo(_bernoulli_model(p_logit), {"x": X}, latent={}, enumerate="c")
        log_px = [jax.nn.log_sigmoid(sign * p_logit)
                  + jnp.sum(dist.Normal(jnp.array([c, -c]), 1.0).log_prob(X), -1)
                  for sign, c in ((-1, 0.0), (1, 1.0))]
        return lb.value, jax.nn.logsumexp(jnp.stack(log_px), 0), lb.enumerated["c"].values

    value, expected, values = jax.jit(both)(0.4)
    np.testing.assert_array_equal(values, np.array([0.0, 1.0], np.float32))
    np.testing.assert_allclose(value, expected, **TOL)


def test_impossible_values_contribute_nothing(key):
    """q(y = 2) = 0 (logit -inf, under jit where numpyro does not validate parameters): the bound is
    the sum over y = 0, 1, and it and its gradient are finite."""
    params = {**PARAMS, "phi": PARAMS["phi"].at[:, 2].set(-jnp.inf)}

    def bound(p):
        q = build_q(p, P).observe(key)
        return inference.elbo(build_model(p, P), {"x": X}, variational=q, axis=0, enumerate="y").value

    def two_classes(p):
        log_q = jax.nn.log_softmax(p["phi"][:, :2], -1)
        total = 0.0
        for k in range(2):
            q = build_q(p, P).observe(key, y=full(k, (N,)))
            bn = build_model(p, P).observe(x=X, y=full(k), z=q["z"].value)
            total += jnp.exp(log_q[:, k]) * (bn.log_joint() - q["z"].log_prob - log_q[:, k])
        return jnp.mean(total, 0)

    value, grads = jax.jit(jax.value_and_grad(lambda p: jnp.sum(bound(p))))(params)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    np.testing.assert_allclose(jax.jit(bound)(params), jax.jit(two_classes)(params), **TOL)


def test_float64():
    """With x64, the enumerated bound is float64 and equals the loop to 1e-12."""
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), PARAMS)
        x = jnp.asarray(X, jnp.float64)

        def both(p):
            value = inference.elbo(build_model(p, with_z=False), {"x": x}, latent={}, enumerate="y").value
            log_joint = jnp.stack([build_model(p, with_z=False).observe(x=x, y=full(k, (N,))).log_joint()
                                   for k in range(K)])
            return value, jax.nn.logsumexp(log_joint, 0)

        value, loop = jax.jit(both)(params)
        assert value.dtype == jnp.float64
        np.testing.assert_allclose(value, loop, rtol=1e-12)


# ------------------------------------------------------------------ the DSL pieces
def test_substitute_replaces_values_and_needs_no_key():
    """A latent given a value is not sampled (no key needed); observed and deterministic values can be
    replaced too; the innermost block is asked first; sites carry the node's shape."""
    sites = []

    def record(site):
        sites.append(site)
        return None

    def zeros(site):
        return jnp.zeros(site.shape, jnp.int32) if site.name == "y" else None

    with ppl.substitute(record), ppl.substitute(zeros):
        bn = build_model(PARAMS, 3, with_z=False).observe(x=X)
    np.testing.assert_array_equal(bn["y"].value, np.zeros((3, N)))
    assert not bn["y"].is_observed and [site.name for site in sites] == ["x"]   # y answered by `zeros`
    assert sites[0].is_observed and sites[0].shape == (3, N, 2) and sites[0].value.shape == (N, 2)
    with ppl.substitute(lambda site: site.value + 1 if site.name == "x" else None), \
            ppl.substitute(lambda site: jnp.ones(site.shape, jnp.int32) if site.name == "y" else None):
        bn = build_model(PARAMS, with_z=False).observe(x=X)
    np.testing.assert_allclose(bn["x"].value, X + 1)
    with pytest.raises(ValueError, match="node 'y' is not observed and must be sampled, but no key"):
        build_model(PARAMS, with_z=False).observe(x=X)
    with pytest.raises(TypeError, match="substitute needs a function"):
        with ppl.substitute(None):
            pass


def test_rebuild_repeats_the_samples(key):
    q = build_q(PARAMS, P).observe(key)
    again = q.rebuild()
    np.testing.assert_array_equal(again["z"].value, q["z"].value)
    with ppl.substitute(lambda site: jnp.full(site.shape, 2, jnp.int32) if site.name == "y" else None):
        fixed = q.rebuild()
    np.testing.assert_array_equal(fixed["y"].value, full(2, (N,)))


def test_support_values():
    np.testing.assert_array_equal(support_values("y", dist.CategoricalLogits(jnp.zeros([5, 3]))), [0, 1, 2])
    one_hot = ppl.numpyro_extras.OneHotCategorical(jnp.zeros([5, 3]))
    np.testing.assert_array_equal(support_values("y", one_hot), np.eye(3))
    np.testing.assert_array_equal(support_values("y", dist.BinomialLogits(jnp.zeros(4), total_count=3)),
                                  [0, 1, 2, 3])
    support = ppl.numpyro_extras.OneHotCategorical(jnp.zeros([5, 3])).enumerate_support()
    assert support.shape == (3, 5, 3)
    with pytest.raises(ValueError, match="node 'n' follows Poisson, whose support is not finite"):
        support_values("node 'n'", dist.Poisson(jnp.ones(3)))
