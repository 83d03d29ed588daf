"""VIMCO gradients against the exact gradient of the K-sample bound, by enumeration.

Three Bernoulli latents and K = 3 samples: the bound L_K and its gradient are exact sums over all
8^3 = 512 tuples of states. The statistical check is a z-test of the Monte Carlo mean gradient with
|z| < 5 per component (two-sided false-failure rate 5.7e-7 per component, about 5e-6 for the file).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.iw_objective import iw_objective
from tests.inference.discrete_model import CONFIGS, N_DRAWS, PARAMS, X, model, q_net

K = 3
TUPLES = jnp.array(list(itertools.product(range(8), repeat=K)))                    # [512, K]


def exact_bound(params):
    log_q = q_net(params).observe(z=CONFIGS)["z"].log_prob                 # [8]
    log_w = model(params).observe(x=X, z=CONFIGS).log_joint() - log_q      # [8]
    prob = jnp.exp(jnp.sum(log_q[TUPLES], -1))                             # [512]
    return jnp.sum(prob * (jax.nn.logsumexp(log_w[TUPLES], -1) - jnp.log(K)))


def vimco_cost(params, key):
    q = q_net(params, K).observe(key)
    return iw_objective(model(params, K), {"x": X}, variational=q, axis=0).vimco()


def test_vimco_gradient_against_enumeration():
    exact = jax.jit(jax.grad(exact_bound))(PARAMS)
    keys = jax.random.split(jax.random.key(0), N_DRAWS)
    grads = jax.jit(jax.vmap(jax.grad(vimco_cost), in_axes=(None, 0)))(PARAMS, keys)
    for name in PARAMS:
        g = np.asarray(grads[name], np.float64)
        z = (g.mean(0) + np.asarray(exact[name])) / (g.std(0, ddof=1) / np.sqrt(N_DRAWS))
        assert np.all(np.abs(z) < 5.0), (name, z)


def test_vimco_value_and_leave_one_out_signal():
    q = q_net(PARAMS, K).observe(jax.random.key(1))
    iw = iw_objective(model(PARAMS, K), {"x": X}, variational=q, axis=0)
    np.testing.assert_allclose(iw.vimco(), -iw.value, rtol=1e-6)  # the cost's value is -L
    # The phi-gradient of the cost is sum_k (-(L - L_{-k}) + w~_k) d log q_k / d phi; check the
    # leave-one-out signal against a direct computation.
    log_w = np.asarray(iw.log_weight, np.float64)
    bound = np.logaddexp.reduce(log_w) - np.log(K)
    loo = []
    for k in range(K):
        replaced = log_w.copy()
        replaced[k] = np.mean(np.delete(log_w, k))
        loo.append(np.logaddexp.reduce(replaced) - np.log(K))
    w_tilde = np.exp(log_w - np.logaddexp.reduce(log_w))
    coefficient = -(bound - np.array(loo)) + w_tilde                       # d cost / d log q_k
    def cost(log_q):
        return iw_objective(model(PARAMS, K), {"x": X}, latent={"z": (q["z"].value, log_q)}, axis=0).vimco()
    got = jax.jit(jax.grad(cost))(q["z"].log_prob)
    np.testing.assert_allclose(got, coefficient, rtol=1e-4, atol=1e-6)


def test_vimco_needs_two_samples():
    q = q_net(PARAMS, 1).observe(jax.random.key(2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        iw_objective(model(PARAMS, 1), {"x": X}, variational=q, axis=0).vimco()
