"""SG-MCMC contracts: update equations, state structure, jit, keys, schedules, errors, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ppl
from inference.sgmcmc.gradients import log_joint_grad_fn, minibatch_log_joint_fn, scaled_log_joint
from inference.sgmcmc.psgld import PSGLD
from inference.sgmcmc.sghmc import SGHMC
from inference.sgmcmc.sgld import SGLD
from inference.sgmcmc.sgnht import SGNHT

LR = 0.01
SAMPLERS = {
    "sgld": SGLD(LR),
    "psgld": PSGLD(LR),
    "sghmc": SGHMC(LR),
    "sghmc_first_order": SGHMC(LR, second_order=False),
    "sgnht": SGNHT(LR, variance_extra=0.1),
    "sgnht_scalar_first_order": SGNHT(LR, variance_extra=0.1, second_order=False, use_vector_alpha=False),
}
LATENT = {"w": jnp.arange(6.0).reshape(2, 3) / 6, "b": jnp.array(0.5)}


def _grad_fn(position):  # a standard normal target
    return jax.tree.map(lambda z: -z, position)


def _allclose(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw), a, b)


@pytest.mark.parametrize("name", ["sgld", "psgld", "sghmc", "sgnht"])  # first-order variants: below
def test_contract_jit_key_structure(name):
    sampler = SAMPLERS[name]
    state = sampler.init(LATENT)
    key = jax.random.key(3)
    out = sampler.update(key, state, _grad_fn)
    update = jax.jit(lambda k, s: sampler.update(k, s, _grad_fn))
    _allclose(out, update(key, state), rtol=1e-5, atol=1e-6)  # jit and no-jit agree
    _allclose(update(key, state), update(key, state), rtol=0, atol=0)  # same key, same result
    new_state, info = out
    assert jax.tree.structure(new_state) == jax.tree.structure(state)  # structure unchanged
    for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves((new_state, info)))
    assert int(new_state.count) == 1 and int(update(key, new_state)[0].count) == 2
    other = update(jax.random.key(4), state)[0]
    assert not np.allclose(other.position["w"], new_state.position["w"])  # the key matters
    # chains by vmap
    states = jax.vmap(sampler.init)(jax.tree.map(lambda x: jnp.stack([x, x + 1]), LATENT))
    stepped, infos = jax.jit(jax.vmap(update))(jax.random.split(key, 2), states)
    assert stepped.position["w"].shape == (2, 2, 3) and infos.learning_rate.shape == (2,)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_update_with_gradient_dict_equals_callable(name):
    sampler = SAMPLERS[name]
    state = sampler.init(LATENT)
    key = jax.random.key(0)
    grads = _grad_fn(sampler.gradient_position(key, state))
    _allclose(sampler.update(key, state, grads), sampler.update(key, state, _grad_fn), rtol=0, atol=0)


def _moved(sampler, state, grads):
    """The update with `grads` and with a zero gradient, same key: the difference has no noise."""
    update, key = jax.jit(sampler.update), jax.random.key(1)
    return update(key, state, grads), update(key, state, jax.tree.map(jnp.zeros_like, grads))


def test_sgld_equation():
    # z' = z + lr/2 g + sqrt(lr) xi
    sampler = SGLD(LR)
    state = sampler.init(LATENT)
    grads = {"w": jnp.ones((2, 3)), "b": jnp.array(-2.0)}
    (new, info), (base, _) = _moved(sampler, state, grads)
    _allclose(jax.tree.map(jnp.subtract, new.position, base.position),
              jax.tree.map(lambda g: 0.5 * LR * g, grads), rtol=1e-4, atol=1e-6)
    assert float(info.learning_rate) == pytest.approx(LR)


def test_psgld_equation():
    # V' = decay V + (1 - decay) g^2; G = 1 / (eps + sqrt(V')); z' = z + lr/2 G g + sqrt(lr G) xi
    sampler = PSGLD(LR, decay=0.8, epsilon=0.1)
    state = sampler.init(LATENT)._replace(square_avg={"w": jnp.full((2, 3), 2.0), "b": jnp.array(0.5)})
    grads = {"w": jnp.full((2, 3), 3.0), "b": jnp.array(-1.0)}
    key = jax.random.key(2)
    new, info = sampler.update(key, state, grads)
    v = {"w": 0.8 * 2.0 + 0.2 * 9.0, "b": 0.8 * 0.5 + 0.2 * 1.0}
    _allclose(new.square_avg, jax.tree.map(lambda x, s: jnp.full(jnp.shape(s), x), v, LATENT), rtol=1e-6)
    g_pre = {k: 1.0 / (0.1 + np.sqrt(x)) for k, x in v.items()}
    # the standardised noise is the same draw whatever the gradient (same key)
    other, _ = sampler.update(key, state, jax.tree.map(lambda g: -g, grads))
    for k in LATENT:
        xi = (new.position[k] - LATENT[k] - 0.5 * LR * g_pre[k] * grads[k]) / np.sqrt(LR * g_pre[k])
        xi_other = (other.position[k] - LATENT[k] + 0.5 * LR * g_pre[k] * grads[k]) / np.sqrt(LR * g_pre[k])
        np.testing.assert_allclose(xi, xi_other, atol=2e-3)
    assert float(info.mean_preconditioner["b"]) == pytest.approx(g_pre["b"], rel=1e-6)


@pytest.mark.parametrize("second_order", [True, False])
def test_sghmc_equation(second_order):
    # second order: z1 = z + v/2; v' = d (d v + lr g(z1) + xi); z' = z1 + v'/2, d = exp(-friction/2)
    # first order: v' = (1 - friction) v + lr g(z) + xi; z' = z + v'
    friction = 0.3
    sampler = SGHMC(LR, friction=friction, variance_estimate=0.1, n_iter_resample_v=None,
                    second_order=second_order)
    v0 = {"w": jnp.full((2, 3), 0.05), "b": jnp.array(-0.02)}
    state = sampler.init(LATENT)._replace(momentum=v0, count=jnp.array(1, jnp.int32))  # no resampling
    expected_position = jax.tree.map(lambda z, v: z + 0.5 * v, LATENT, v0) if second_order else LATENT
    _allclose(sampler.gradient_position(jax.random.key(0), state), expected_position, rtol=1e-6)
    grads = {"w": jnp.ones((2, 3)), "b": jnp.array(2.0)}
    (new, info), (base, _) = _moved(sampler, state, grads)
    factor = np.exp(-friction / 2) if second_order else 1.0
    _allclose(jax.tree.map(jnp.subtract, new.momentum, base.momentum),
              jax.tree.map(lambda g: factor * LR * g, grads), rtol=1e-4, atol=1e-7)
    if second_order:
        _allclose(new.position, jax.tree.map(lambda z, v, w: z + 0.5 * v + 0.5 * w, LATENT, v0, new.momentum),
                  rtol=1e-5, atol=1e-7)
    else:
        _allclose(new.position, jax.tree.map(jnp.add, LATENT, new.momentum), rtol=1e-5, atol=1e-7)
    _allclose(info.mean_k, jax.tree.map(lambda v: jnp.mean(v * v), new.momentum), rtol=1e-6)


@pytest.mark.parametrize("second_order", [True, False])
@pytest.mark.parametrize("use_vector_alpha", [True, False])
def test_sgnht_equation(second_order, use_vector_alpha):
    kappa, a = 2.0, 0.1
    sampler = SGNHT(LR, variance_extra=a, tune_rate=kappa, second_order=second_order,
                    use_vector_alpha=use_vector_alpha)
    v0 = {"w": jnp.linspace(-0.1, 0.1, 6).reshape(2, 3), "b": jnp.array(0.2)}
    state = sampler.init(LATENT)._replace(momentum=v0, count=jnp.array(1, jnp.int32))
    for k in LATENT:
        assert state.alpha[k].shape == (LATENT[k].shape if use_vector_alpha else ())
    kinetic = (lambda v: v * v) if use_vector_alpha else (lambda v: jnp.mean(v * v))
    grads = {"w": jnp.ones((2, 3)), "b": jnp.array(-1.0)}
    (new, info), (base, _) = _moved(sampler, state, grads)
    if second_order:
        alpha_half = {k: a + 0.5 * kappa * (kinetic(v0[k]) - LR) for k in LATENT}
        factor = {k: jnp.exp(-0.5 * alpha_half[k]) for k in LATENT}
        alpha_new = {k: alpha_half[k] + 0.5 * kappa * (kinetic(new.momentum[k]) - LR) for k in LATENT}
        position = {k: LATENT[k] + 0.5 * v0[k] + 0.5 * new.momentum[k] for k in LATENT}
    else:
        factor = {k: 1.0 for k in LATENT}
        alpha_new = {k: a + kappa * (kinetic(new.momentum[k]) - LR) for k in LATENT}
        position = {k: LATENT[k] + new.momentum[k] for k in LATENT}
    _allclose(jax.tree.map(jnp.subtract, new.momentum, base.momentum),
              {k: factor[k] * LR * grads[k] for k in LATENT}, rtol=1e-4, atol=1e-7)
    _allclose(new.alpha, alpha_new, rtol=1e-5, atol=1e-7)
    _allclose(info.alpha, alpha_new, rtol=1e-5, atol=1e-7)
    _allclose(new.position, position, rtol=1e-5, atol=1e-7)
    _allclose(info.mean_k, {k: kinetic(new.momentum[k]) for k in LATENT}, rtol=1e-5)


@pytest.mark.parametrize("sampler", [SGHMC(LR, n_iter_resample_v=3), SGNHT(LR, n_iter_resample_v=3)])
def test_momentum_resampled_at_step_zero_and_every_n(sampler):
    state = sampler.init(LATENT)
    v0 = {"w": jnp.full((2, 3), 7.0), "b": jnp.array(7.0)}  # far outside N(0, lr): detectable
    for count, is_resampled in [(0, True), (1, False), (2, False), (3, True), (4, False), (6, True)]:
        s = state._replace(momentum=v0, count=jnp.array(count, jnp.int32))
        half = sampler.gradient_position(jax.random.key(count), s)
        moved = np.asarray(half["w"] - LATENT["w"])
        assert np.allclose(moved, 3.5) != is_resampled, count
        if is_resampled:  # fresh momentum ~ N(0, lr): half of it stays within a few sqrt(lr)
            assert np.all(np.abs(moved) < 0.5 * 6 * np.sqrt(LR))


@pytest.mark.parametrize("name", ["sgld", "psgld", "sghmc", "sgnht"])
def test_learning_rate_schedule(name):
    schedule = optax.exponential_decay(init_value=LR, transition_steps=1, decay_rate=0.5)
    template = SAMPLERS[name]
    kwargs = {k: getattr(template, k) for k in ("friction", "variance_estimate", "variance_extra",
                                                 "decay", "epsilon") if hasattr(template, k)}
    sampler = type(template)(schedule, **kwargs)
    update = jax.jit(lambda k, s: sampler.update(k, s, _grad_fn))
    state, rates = sampler.init(LATENT), []
    for t in range(4):
        state, info = update(jax.random.key(t), state)
        rates.append(float(info.learning_rate))
    np.testing.assert_allclose(rates, LR * 0.5 ** np.arange(4), rtol=1e-6)


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="learning_rate"):
        SGLD(0.0)
    with pytest.raises(TypeError, match="learning_rate"):
        SGLD("fast")
    with pytest.raises(ValueError, match="decay"):
        PSGLD(LR, decay=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        PSGLD(LR, epsilon=0.0)
    with pytest.raises(ValueError, match="variance_estimate"):
        SGHMC(LR, friction=0.1, variance_estimate=0.2)
    with pytest.raises(ValueError, match="n_iter_resample_v"):
        SGHMC(LR, n_iter_resample_v=-1)
    with pytest.raises(ValueError, match="tune_rate"):
        SGNHT(LR, tune_rate=0.0)
    with pytest.raises(TypeError, match="floating"):
        SGLD(LR).init({"n": jnp.arange(3)})
    with pytest.raises(ValueError, match="shape"):
        SGLD(LR).update(jax.random.key(0), SGLD(LR).init(LATENT), {"w": jnp.ones(3), "b": jnp.ones(())})


# ---------------------------------------------------------------- gradients through the DSL
@ppl.meta_bayesian_net
def _linear_regression(x):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=2.0, group_ndims=1)
    b = bn.normal("b", jnp.zeros(()), std=1.0)
    bn.normal("y", x @ w + b, std=0.5, group_ndims=1)
    return bn


def _regression_data(n=12):
    x = jax.random.normal(jax.random.key(0), (n, 3))
    y = x @ jnp.array([1.0, -1.0, 0.5]) + 0.3 + 0.5 * jax.random.normal(jax.random.key(1), (n,))
    return x, y


def test_minibatch_gradient_is_unbiased_over_a_partition():
    # The mean over the minibatches of a partition of the data of the N/B-rescaled gradient equals
    # the full-data gradient exactly (up to float32 rounding): an exact check of unbiasedness.
    x, y = _regression_data(12)
    position = {"w": jnp.array([0.3, 0.1, -0.2]), "b": jnp.array(0.4)}

    @jax.jit
    def grad(x, y, position, scale):
        model = _linear_regression(x)
        model.log_joint = scaled_log_joint(scale, ["y"])
        return log_joint_grad_fn(model, {"y": y})(position)

    full = grad(x, y, position, 1.0)
    batches = np.split(np.random.default_rng(0).permutation(12), 3)
    batch_grads = [grad(x[index], y[index], position, 12 / 4) for index in batches]
    mean = jax.tree.map(lambda *g: sum(g) / 3, *batch_grads)
    _allclose(mean, full, rtol=1e-5, atol=1e-5)
    assert not np.allclose(batch_grads[0]["w"], full["w"])  # the single batches do differ


def test_step_through_the_dsl_matches_update():
    x, y = _regression_data(12)
    model = _linear_regression(x)
    sampler = SGHMC(LR)
    state = sampler.init({"w": jnp.zeros(3), "b": jnp.zeros(())})
    key = jax.random.key(5)
    grad_fn = jax.grad(lambda p: model.observe(y=y, **p).log_joint())
    _allclose(sampler.step(key, state, model, {"y": y}), sampler.update(key, state, grad_fn), rtol=1e-6)


def test_log_joint_sums_each_node_and_refuses_a_non_scalar_override():
    # Each node's log-density is summed over its axes (the prior counted once, as for HMC); a
    # log_joint override must itself give a scalar.
    @ppl.meta_bayesian_net
    def per_point(x):
        bn = ppl.BayesianNet()
        w = bn.normal("w", jnp.zeros(()), std=1.0)
        bn.normal("y", x * w, std=1.0)  # no group_ndims: bn.log_joint() has shape [n]
        return bn

    x, y = jnp.arange(1.0, 5.0), jnp.array([0.5, 1.0, 1.0, 2.0])
    value = minibatch_log_joint_fn(per_point(x), {"y": y})({"w": jnp.asarray(0.3)})
    residual = np.asarray(y) - 0.3 * np.asarray(x)
    expected = -0.5 * 0.3 ** 2 - 0.5 * np.sum(residual ** 2) - 2.5 * np.log(2 * np.pi)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    model = per_point(x)
    model.log_joint = lambda bn: bn["y"].log_prob   # shape [4]
    with pytest.raises(ValueError, match="scalar log-joint"):
        minibatch_log_joint_fn(model, {"y": y})({"w": jnp.zeros(())})
