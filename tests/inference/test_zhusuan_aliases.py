"""ZhuSuan's inference surface: objectives as arrays of their value, log-joint functions in place of
the model, ZhuSuan's argument order (and the old order with a DeprecationWarning), `proposal=`,
`rws()`, and the flows by ZhuSuan's names; each alias equals its counterpart's result.

Model and q as in test_elbo.py (a conjugate Gaussian, 2 data points); q draws K = 5 particles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
import ppl
from inference import flows
from tests.inference.gaussian_model import X, build_model

K = 5


@ppl.meta_bayesian_net
def build_q(n_particles=K, is_reparameterized=None):
    bn = ppl.BayesianNet()
    bn.normal("z", X / 2, std=0.7, group_ndims=1, n_samples=n_particles,
              is_reparameterized=is_reparameterized)
    return bn


def log_joint_fn(values):
    """ZhuSuan's alternative to a model: log p of a dict of every node's value."""
    return build_model().observe(**values).log_joint()


@pytest.fixture(scope="module")
def q():
    return build_q().observe(jax.random.key(3))


@pytest.mark.parametrize("make", [inference.elbo, inference.importance_weighted_objective],
                         ids=["elbo", "iw"])
def test_objectives_are_arrays_of_their_value(q, make):
    lb = make(build_model(), {"x": X}, variational=q, axis=0)
    value = lb.value
    assert lb.tensor is not None and np.array_equal(lb.tensor, value)
    np.testing.assert_array_equal(jnp.mean(lb), jnp.mean(value))
    np.testing.assert_array_equal(lb + 1, value + 1)
    np.testing.assert_array_equal(2 * lb - lb / 2, 2 * value - value / 2)
    np.testing.assert_array_equal(-lb, lb.sgvb())                 # ZhuSuan: sgvb() is -tensor
    np.testing.assert_array_equal(np.asarray(lb), np.asarray(value))
    assert float(lb[0]) == float(value[0]) and float(jnp.sum(lb)) == float(jnp.sum(value))
    assert lb.shape == (2,) and lb.n_particles == K


def test_objectives_inside_jit_and_grad():
    def loss(shift, key):
        q = build_q().observe(key)
        latent = {"z": (q["z"].value + shift, q["z"].log_prob)}
        return -jnp.mean(inference.elbo(build_model(), {"x": X}, latent=latent, axis=0))

    value, grad = jax.jit(jax.value_and_grad(loss))(0.1, jax.random.key(0))
    assert value.shape == () and np.isfinite(grad)
    # the value is the mean of the per-particle log-weights, so its gradient is too
    expected = jax.grad(lambda s: -jnp.mean(inference.elbo(
        build_model(), {"x": X}, latent={"z": (build_q().observe(jax.random.key(0))["z"].value + s,
                                               build_q().observe(jax.random.key(0))["z"].log_prob)},
        axis=0).log_weight))(0.1)
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_float_of_a_scalar_objective():
    @ppl.meta_bayesian_net
    def scalar_model():
        bn = ppl.BayesianNet()
        z = bn.normal("z", 0., std=1.)
        bn.normal("x", z, std=1.)
        return bn

    def bound(key):
        q = ppl.BayesianNet(key=key)
        q.normal("z", 0.5, std=0.8, n_samples=K)
        return inference.importance_weighted_objective(scalar_model(), {"x": 1.3}, variational=q, axis=0)

    value = jax.jit(bound)(jax.random.key(0))        # the objective leaves jit as its value
    assert isinstance(value, jax.Array) and value.shape == ()
    assert float(bound(jax.random.key(0))) == pytest.approx(float(value), rel=1e-6)


def test_klpq_is_not_an_array(q):
    objective = inference.klpq(build_model(), {"x": X}, variational=build_q(is_reparameterized=False)
                               .observe(jax.random.key(0)), axis=0)
    for convert in (jnp.mean, lambda o: o.tensor, lambda o: o.value, lambda o: o + 1):
        with pytest.raises(NotImplementedError, match=r"klpq\) can only be optimised"):
            convert(objective)


@pytest.mark.parametrize("name", ["elbo", "iw_objective", "klpq", "is_loglikelihood"])
def test_a_log_joint_function_equals_the_model(q, name):
    fn = getattr(inference, name)
    with_model = fn(build_model(), {"x": X}, variational=q, axis=0)
    with_function = fn(log_joint_fn, {"x": X}, variational=q, axis=0)
    if name == "klpq":
        np.testing.assert_allclose(with_function.log_weight, with_model.log_weight, rtol=1e-6)
        assert with_function.bn is None and with_function.meta_bn is None
    else:
        np.testing.assert_allclose(jnp.asarray(with_function), jnp.asarray(with_model), rtol=1e-6)


def test_dreg_with_a_log_joint_function():
    def cost(fn, key):
        bn = ppl.BayesianNet(key=key)
        bn.normal("z", X / 2, std=0.7, group_ndims=1, n_samples=K, use_path_derivative=True)
        return jnp.sum(inference.iw_objective(fn, {"x": X}, variational=bn, axis=0).dreg())

    np.testing.assert_allclose(cost(log_joint_fn, jax.random.key(0)), cost(build_model(), jax.random.key(0)),
                               rtol=1e-6)


def test_zhusuan_positional_order(q):
    latent = {"z": (q["z"].value, q["z"].log_prob)}
    by_keyword = inference.is_loglikelihood(build_model(), {"x": X}, variational=q, axis=0)
    np.testing.assert_allclose(inference.is_loglikelihood(build_model(), {"x": X}, latent, 0), by_keyword,
                               rtol=1e-6)
    np.testing.assert_allclose(inference.is_loglikelihood(build_model(), {"x": X}, None, 0, q), by_keyword,
                               rtol=1e-6)
    by_keyword = inference.elbo(build_model(), {"x": X}, variational=q, axis=0).value
    positional = inference.elbo(build_model(), {"x": X}, latent, 0).value
    np.testing.assert_allclose(positional, by_keyword, rtol=1e-6)


def test_proposal_is_zhusuans_name_for_variational(q):
    np.testing.assert_array_equal(
        inference.is_loglikelihood(build_model(), {"x": X}, proposal=q, axis=0),
        inference.is_loglikelihood(build_model(), {"x": X}, variational=q, axis=0))
    with pytest.raises(ValueError, match="give the variational net once"):
        inference.is_loglikelihood(build_model(), {"x": X}, proposal=q, variational=q, axis=0)


def _is_ll(*args, **kwargs):
    return inference.is_loglikelihood(build_model(), {"x": X}, *args, **kwargs)


def _elbo(*args, **kwargs):
    return inference.elbo(build_model(), {"x": X}, *args, **kwargs).value


def _iw(*args, **kwargs):
    return inference.iw_objective(build_model(), {"x": X}, *args, **kwargs).value


@pytest.mark.parametrize("old, new", [
    (lambda q: _is_ll(q, axis=0), lambda q: _is_ll(variational=q, axis=0)),
    (lambda q: _is_ll(q, None, 0), lambda q: _is_ll(variational=q, axis=0)),       # the whole old order
    (lambda q: _elbo(q, axis=0), lambda q: _elbo(variational=q, axis=0)),
    (lambda q: _iw(q, None, 0), lambda q: _iw(variational=q, axis=0)),
], ids=["is_loglikelihood", "is_loglikelihood_all_positional", "elbo", "iw_objective_all_positional"])
def test_old_argument_order_warns_and_works(q, old, new):
    with pytest.warns(DeprecationWarning, match=r"the old argument order.*pass the net as variational=q"):
        value = old(q)
    np.testing.assert_array_equal(value, new(q))


def test_rws_is_a_deprecated_alias():
    q = build_q(is_reparameterized=False).observe(jax.random.key(0))
    objective = inference.klpq(build_model(), {"x": X}, variational=q, axis=0)
    with pytest.warns(DeprecationWarning, match=r"rws\(\) is ZhuSuan's older name; use .importance\(\)"):
        old = objective.rws()
    np.testing.assert_array_equal(old, objective.importance())


def test_planar_normalizing_flow_equals_planar():
    params = flows.init_planar(jax.random.key(0), 2, n_layers=3, scale=0.5)
    z, log_q = jax.random.normal(jax.random.key(1), (4, 2)), jnp.zeros(4)
    new = flows.planar_normalizing_flow(z, log_q, 3, params=params)
    for value, expected in zip(new, flows.planar(params, z, log_q), strict=True):
        np.testing.assert_array_equal(value, expected)
    with pytest.raises(TypeError, match=r"give the flow's parameters as params=.*init_planar"):
        flows.planar_normalizing_flow(z, log_q, 3)
    with pytest.raises(ValueError, match="n_iters=2, but params hold 3 layers"):
        flows.planar_normalizing_flow(z, log_q, 2, params=params)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_inv_autoregressive_flow_with_made_equals_iaf(n_layers):
    """ZhuSuan leaves the variables in the last step's order; `iaf` restores the original order, so
    the two agree up to one final reversal when the number of steps is odd."""
    params = flows.init_iaf(jax.random.key(0), 4, n_layers=n_layers, hidden=8, context_dim=3)
    z, log_q = jax.random.normal(jax.random.key(1), (5, 4)), jnp.zeros(5)
    context = jax.random.normal(jax.random.key(2), (5, 3))
    @jax.jit
    def both(params, z, log_q, context):
        return (flows.inv_autoregressive_flow(z, context, log_q, flows.made_autoregressive_nn(params),
                                              n_layers, update="gru"),
                flows.iaf(params, z, log_q, context=context))

    (new_z, new_log_q), (iaf_z, iaf_log_q) = both(params, z, log_q, context)
    # the same float32 operations, compiled differently (a Python loop against lax.scan): a few ulps
    np.testing.assert_allclose(new_z, jnp.flip(iaf_z, -1) if n_layers % 2 else iaf_z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_log_q, iaf_log_q, rtol=1e-5, atol=1e-6)


def test_inv_autoregressive_flow_normal_update_log_det():
    """ZhuSuan's default update z <- s z + m with its linear autoregressive network: the change of
    log q is -log |det J| by jax.jacfwd (float32 tolerance)."""
    weights = 0.3 * jax.random.normal(jax.random.key(0), (2, 3, 3, 3))
    mask = jnp.triu(jnp.ones((3, 3)), k=1)                    # output j depends on inputs i < j

    def linear_ar(name, index, z, hidden):
        return z @ (mask * weights[0, index]), jnp.exp(z @ (mask * weights[1, index]))

    def flow(z):
        out, log_q = flows.inv_autoregressive_flow(z[None], None, jnp.zeros(1), linear_ar, 3)
        return out[0], log_q[0]

    z = jnp.array([0.3, -1.2, 0.8])
    jacobian, (_, log_q) = jax.jit(lambda v: (jax.jacfwd(lambda u: flow(u)[0])(v), flow(v)))(z)
    np.testing.assert_allclose(log_q, -jnp.linalg.slogdet(jacobian)[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="update must be 'normal' or 'gru'"):
        flows.inv_autoregressive_flow(z[None], None, jnp.zeros(1), linear_ar, 3, update="affine")
