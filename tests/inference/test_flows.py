"""Flows: log-determinants against jax.jacfwd, autoregressive structure, shapes and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.flows import IAFParams, PlanarParams, iaf, init_iaf, init_planar, made_masks, planar

DIM = 4


def check_log_det(flow_fn, zs):
    """The flow's change of log q equals -log |det J| computed by jax.jacfwd (float32 tolerance),
    for each row of `zs` ([n, dim]); returns the Jacobians [n, dim, dim]."""
    def one(z):
        jac = jax.jacfwd(lambda v: flow_fn(v, jnp.zeros(()))[0])(z)
        return flow_fn(z, jnp.zeros(()))[1], jnp.linalg.slogdet(jac)[1], jac
    new_log_q, log_abs_det, jac = jax.jit(jax.vmap(one))(zs)
    np.testing.assert_allclose(new_log_q, -log_abs_det, rtol=1e-4, atol=1e-4)
    return jac


def test_planar_log_det_against_jacfwd():
    key_p, key_z, key_u = jax.random.split(jax.random.key(0), 3)
    params = init_planar(key_p, DIM, n_layers=3, scale=1.0)
    # A u that would make a raw planar layer non-invertible (w . u < -1) is corrected inside.
    params = params._replace(u=params.u.at[0].set(-3.0 * params.w[0]))
    check_log_det(lambda v, lq: planar(params, v, lq), jax.random.normal(key_z, (5, DIM)))
    batch = jax.random.normal(key_u, (2, 3, DIM))
    new_z, log_q = planar(params, batch, jnp.ones((2, 3)))
    assert new_z.shape == (2, 3, DIM) and log_q.shape == (2, 3)
    single = jax.jit(jax.vmap(jax.vmap(lambda v: planar(params, v, jnp.ones(()))[1])))(batch)
    np.testing.assert_allclose(log_q, single, rtol=1e-5)


def test_planar_is_identity_at_zero_direction():
    params = PlanarParams(jnp.zeros((2, DIM)), jnp.ones((2, DIM)), jnp.zeros(2))
    z = jnp.arange(DIM, dtype=jnp.float32)[None]
    # u' = (softplus(0) - 1) w / |w|^2 is not zero, so check only that the map stays invertible.
    jac = check_log_det(lambda v, lq: planar(params, v, lq), z)
    assert abs(float(jnp.linalg.det(jac[0]))) > 0


@pytest.mark.parametrize("context_dim", [0, 3])
def test_iaf_log_det_against_jacfwd(context_dim):
    key_p, key_z, key_h = jax.random.split(jax.random.key(1), 3)
    params = init_iaf(key_p, DIM, n_layers=3, hidden=8, context_dim=context_dim, forget_bias=0.5)
    context = jax.random.normal(key_h, (context_dim,)) if context_dim else None
    check_log_det(lambda v, lq: iaf(params, v, lq, context=context), jax.random.normal(key_z, (4, DIM)))


def test_iaf_single_step_is_autoregressive():
    params = init_iaf(jax.random.key(2), DIM, n_layers=1, hidden=10)
    z = jax.random.normal(jax.random.key(3), (1, DIM))
    jac = check_log_det(lambda v, lq: iaf(params, v, lq), z)[0]
    # Output i depends on inputs j <= i only (lower triangular); the diagonal is sigma_i.
    np.testing.assert_array_equal(np.triu(np.asarray(jac), k=1), 0.0)
    mask_in, mask_out = made_masks(DIM, 10)
    assert np.all(np.tril(mask_in @ mask_out) == 0)  # no path from input j to output i <= j


def test_iaf_batch_shapes_and_errors():
    params = init_iaf(jax.random.key(4), DIM, n_layers=2, hidden=6)
    assert isinstance(params, IAFParams)
    z, log_q = jax.jit(iaf)(params, jnp.zeros((5, 2, DIM)), jnp.zeros((5, 2)))
    assert z.shape == (5, 2, DIM) and log_q.shape == (5, 2)
    with pytest.raises(ValueError, match=r"samples must have shape \[\*batch, 4\]"):
        iaf(params, jnp.zeros((5, 3)), jnp.zeros(5))
    with pytest.raises(ValueError, match="log_q"):
        planar(init_planar(jax.random.key(5), DIM, 1), jnp.zeros((5, DIM)), jnp.zeros(3))
    with pytest.raises(ValueError, match="context"):
        iaf(params, jnp.zeros((5, DIM)), jnp.zeros(5), context=jnp.zeros((5, 2)))
