"""klpq(...).importance() (reweighted wake-sleep q update) against exact enumeration.

Three Bernoulli latents, K = 3 samples: the expectation of the self-normalised estimator is an
exact sum over all 8^3 tuples of states. The statistical check is a z-test with |z| < 5 per
component (two-sided false-failure rate 5.7e-7 per component, about 5e-6 for the file).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.klpq import InclusiveKLObjective, klpq
from tests.inference.discrete_model import CONFIGS, N_DRAWS, PARAMS, X, model, q_net

K = 3


def expected_estimator(params, k):
    """E[-sum_j w~_j grad log q(z_j)] over all 8^k tuples, exactly (w~ and the tuple law fixed)."""
    tuples = jnp.array(list(itertools.product(range(8), repeat=k)))
    log_q = q_net(params).observe(z=CONFIGS)["z"].log_prob
    log_w = jax.lax.stop_gradient(model(params).observe(x=X, z=CONFIGS).log_joint() - log_q)
    prob = jax.lax.stop_gradient(jnp.exp(jnp.sum(log_q[tuples], -1)))
    w_tilde = jax.nn.softmax(log_w[tuples], -1)
    return jnp.sum(prob * -jnp.sum(w_tilde * log_q[tuples], -1))


def inclusive_kl_grad(params):
    """grad_phi KL(p(z|x) || q) = -E_p(z|x)[grad log q(z)], exactly."""
    log_q = q_net(params).observe(z=CONFIGS)["z"].log_prob
    log_joint = jax.lax.stop_gradient(model(params).observe(x=X, z=CONFIGS).log_joint())
    return -jnp.sum(jax.nn.softmax(log_joint) * log_q)


def rws_cost(params, key):
    q = q_net(params, K).observe(key)
    return klpq(model(params, K), {"x": X}, variational=q, axis=0).importance()


def test_importance_gradient_against_enumeration():
    exact = jax.jit(jax.grad(lambda p: expected_estimator(p, K)))(PARAMS)
    keys = jax.random.split(jax.random.key(0), N_DRAWS)
    grads = jax.jit(jax.vmap(jax.grad(rws_cost), in_axes=(None, 0)))(PARAMS, keys)
    g = np.asarray(grads["phi"], np.float64)
    z = (g.mean(0) - np.asarray(exact["phi"])) / (g.std(0, ddof=1) / np.sqrt(N_DRAWS))
    assert np.all(np.abs(z) < 5.0), z
    # No gradient reaches the model.
    assert np.all(np.asarray(grads["theta"]) == 0) and np.all(np.asarray(grads["w"]) == 0)


def test_bias_shrinks_with_k():
    # The self-normalised estimator's expectation approaches grad KL(p || q) as K grows (exact sums).
    truth = np.asarray(jax.jit(jax.grad(inclusive_kl_grad))(PARAMS)["phi"])
    expected = [jax.jit(jax.grad(lambda p, k=k: expected_estimator(p, k)))(PARAMS)["phi"] for k in (1, 2, 3)]
    errors = [np.linalg.norm(np.asarray(g) - truth) for g in expected]
    assert errors[0] > errors[1] > errors[2]


def test_single_sample_warns_and_latent_dict():
    q = q_net(PARAMS).observe(jax.random.key(1))
    objective = klpq(model(PARAMS), {"x": X}, latent={"z": (q["z"].value, q["z"].log_prob)})
    assert isinstance(objective, InclusiveKLObjective) and "x" in objective.bn
    with pytest.warns(UserWarning, match="single sample"):
        cost = objective.importance()
    np.testing.assert_allclose(cost, -q["z"].log_prob)
    q1 = q_net(PARAMS, 1).observe(jax.random.key(2))
    with pytest.warns(UserWarning, match="single sample"):
        klpq(model(PARAMS, 1), {"x": X}, variational=q1, axis=0).importance()
