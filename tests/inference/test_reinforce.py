"""REINFORCE (score function, with moving-average and learned baselines) against exact enumeration.

The model has three Bernoulli latents, so the ELBO and its gradient are exact sums over 8 states.
Statistical checks are z-tests of the Monte Carlo mean gradient against the exact one with
|z| < 5 per component (two-sided false-failure rate 5.7e-7 per component, about 1e-5 for the file).
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from inference.elbo import elbo
from inference.estimators import ReinforceResult, ReinforceState, reinforce, reinforce_init
from tests.inference.discrete_model import CONFIGS, N_DRAWS, PARAMS, D, X, model, q_net

Z_MAX = 5.0


def exact_elbo(params):
    log_joint = model(params).observe(x=X, z=CONFIGS).log_joint()
    log_q = q_net(params).observe(z=CONFIGS)["z"].log_prob
    return jnp.sum(jnp.exp(log_q) * (log_joint - log_q))


def per_sample_grads(params, state, **kwargs):
    def grad_one(key):
        def cost(p):
            q = q_net(p).observe(key)
            return elbo(model(p), {"x": X}, variational=q).reinforce(state, **kwargs).cost
        return jax.grad(cost)(params)
    keys = jax.random.split(jax.random.key(0), N_DRAWS)
    return jax.jit(jax.vmap(grad_one))(keys)


def assert_unbiased(grads, exact):
    for name in exact:
        g = np.asarray(grads[name], np.float64)
        z = (g.mean(0) - np.asarray(exact[name])) / (g.std(0, ddof=1) / np.sqrt(len(g)))
        assert np.all(np.abs(z) < Z_MAX), (name, z)


def debiased_state(value, n_updates=50, decay=0.8):
    """A state whose bias-corrected moving mean equals `value`."""
    return ReinforceState(jnp.asarray(value * (1 - decay**n_updates), jnp.float32),
                          jnp.asarray(n_updates, jnp.int32))


@pytest.fixture(scope="module")
def exact_cost_grad():
    return jax.tree_util.tree_map(jnp.negative, jax.jit(jax.grad(exact_elbo))(PARAMS))


def test_reinforce_unbiased_without_and_with_centering(exact_cost_grad):
    # Any centering independent of the current sample keeps the estimator unbiased.
    plain = per_sample_grads(PARAMS, reinforce_init(), variance_reduction=False)
    assert_unbiased(plain, exact_cost_grad)
    centred = per_sample_grads(PARAMS, debiased_state(-3.0), baseline=jnp.array(1.7))
    assert_unbiased(centred, exact_cost_grad)


def test_baselines_lower_variance_on_fixed_problem():
    value = float(jax.jit(exact_elbo)(PARAMS))
    plain = per_sample_grads(PARAMS, reinforce_init(), variance_reduction=False)["phi"]
    moving = per_sample_grads(PARAMS, debiased_state(value))["phi"]
    learned = per_sample_grads(PARAMS, reinforce_init(), baseline=jnp.array(value))["phi"]
    var_plain = float(jnp.sum(jnp.var(plain, 0)))
    # Measured ratios are about 0.32; the variance estimates have relative error ~sqrt(2 / N_DRAWS)
    # = 1%, so the 0.5 threshold cannot fail by chance.
    assert float(jnp.sum(jnp.var(moving, 0))) < 0.5 * var_plain
    assert float(jnp.sum(jnp.var(learned, 0))) < 0.5 * var_plain


def test_p_equals_q_gives_zero_variance():
    @ppl.meta_bayesian_net
    def prior_only(params, n_particles=None):
        bn = ppl.BayesianNet()
        bn.bernoulli("z", logits=params["theta"], group_ndims=1, n_samples=n_particles)
        bn.normal("x", 0.0, std=1.0)  # x independent of z: the posterior is the prior
        return bn

    params = {"theta": PARAMS["theta"], "phi": PARAMS["theta"]}
    log_px = float(jax.scipy.stats.norm.logpdf(X))

    def phi_grad(key, state, baseline):
        def cost(p):
            q = q_net(p).observe(key)
            return elbo(prior_only(p), {"x": X}, variational=q).reinforce(state, baseline=baseline).cost
        return jax.grad(cost)(params)["phi"]

    keys = jax.random.split(jax.random.key(1), 200)
    for state, baseline in [(reinforce_init(), jnp.array(log_px)), (debiased_state(log_px), None)]:
        grads = jax.jit(jax.vmap(phi_grad, in_axes=(0, None, None)))(keys, state, baseline)
        # The signal log p(x, z) - log q(z) = log p(x) is constant; centred exactly, it is 0.
        np.testing.assert_allclose(grads, 0.0, atol=1e-5)


def test_state_update_and_result_type():
    key = jax.random.key(2)
    q = q_net(PARAMS, n_particles=6).observe(key)
    lb = elbo(model(PARAMS, n_particles=6), {"x": X}, variational=q, axis=0)
    result = lb.reinforce(reinforce_init(), decay=0.8)
    assert isinstance(result, ReinforceResult)
    assert result.cost.shape == () and result.baseline_cost.shape == ()
    assert int(result.state.n_updates) == 1
    np.testing.assert_allclose(result.state.moving_mean, 0.2 * jnp.mean(lb.log_weight), rtol=1e-6)
    # Centred by the debiased mean c: the cost's value is mean(-(l - c) log q - log p).
    c = 0.2 * float(jnp.mean(lb.log_weight)) / (1 - 0.8)
    second = lb.reinforce(result.state, decay=0.8)
    expected = jnp.mean(-(lb.log_weight - c) * lb.log_q - lb.log_joint)
    np.testing.assert_allclose(second.cost, expected, rtol=1e-5)
    assert int(second.state.n_updates) == 2


def test_learned_baseline_cost_and_scan():
    x = jnp.array([0.5, 2.5, -1.0])

    @ppl.meta_bayesian_net
    def batch_model(params, n_particles):
        bn = ppl.BayesianNet()
        z = bn.bernoulli("z", logits=jnp.broadcast_to(params["theta"], (3, D)), group_ndims=1,
                         n_samples=n_particles)
        bn.normal("x", z.astype(jnp.float32) @ params["w"], std=1.0)
        return bn

    @ppl.meta_bayesian_net
    def batch_q(params, n_particles):
        bn = ppl.BayesianNet()
        bn.bernoulli("z", logits=jnp.broadcast_to(params["phi"], (3, D)), group_ndims=1,
                     n_samples=n_particles)
        return bn

    def step(state, key):
        def costs(baseline):
            q = batch_q(PARAMS, 4).observe(key)
            lb = elbo(batch_model(PARAMS, 4), {"x": x}, variational=q, axis=0)
            result = lb.reinforce(state, baseline=baseline)
            return jnp.sum(result.baseline_cost), (result, lb.log_weight)
        baseline = jnp.zeros(3)
        grad, (result, log_w) = jax.grad(costs, has_aux=True)(baseline)
        return result.state, (result.cost, grad, jnp.mean(log_w, 0))

    state, (costs, grads, mean_log_w) = jax.jit(lambda s, k: jax.lax.scan(step, s, k))(
        reinforce_init(), jax.random.split(jax.random.key(3), 5))
    # d/db of sum over data of mean_k 0.5 (l - b)^2 at b = 0 is -mean_k l.
    np.testing.assert_allclose(grads, -mean_log_w, rtol=1e-5)
    assert costs.shape == (5, 3) and int(state.n_updates) == 5
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(reinforce_init())


def test_errors():
    q = q_net(PARAMS).observe(jax.random.key(4))
    lb = elbo(model(PARAMS), {"x": X}, variational=q)
    with pytest.raises(ValueError, match="decay"):
        lb.reinforce(reinforce_init(), decay=1.0)
    with pytest.raises(ValueError, match="variance_reduction"):
        lb.reinforce(reinforce_init(), variance_reduction=False, baseline=jnp.zeros(()))
    with pytest.raises(ValueError, match="broadcast"):
        reinforce(jnp.zeros((4, 3)), jnp.zeros((4, 3)), reinforce_init(), baseline=jnp.zeros(5))

    @ppl.meta_bayesian_net
    def gauss(mean):
        bn = ppl.BayesianNet()
        z = bn.normal("z", mean, std=1.0, group_ndims=1)
        bn.normal("x", jnp.sum(z), std=1.0)
        return bn

    @ppl.meta_bayesian_net
    def gauss_q():
        bn = ppl.BayesianNet()
        bn.normal("z", jnp.zeros(D), std=1.0, group_ndims=1)
        return bn

    gq = gauss_q().observe(jax.random.key(5))
    with pytest.raises(ValueError, match="'z'.*reparameterised"):
        elbo(gauss(jnp.ones(D)), {"x": X}, variational=gq).reinforce(reinforce_init())
