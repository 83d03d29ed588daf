"""Unit and contract tests of the pure HMC pieces: integrator, metric, kernel, adaptation helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.hmc import (
    IntegratorState,
    build_kernel,
    gaussian_euclidean,
    init,
    leapfrog_trajectory,
    velocity_verlet,
)
from inference.hmc import adaptation as adapt

PRECISION = jnp.array([[2.0, 0.6], [0.6, 1.0]])


def gaussian_log_joint(position):
    x = position["x"]
    return -0.5 * x @ PRECISION @ x


def start_state(key, inverse_mass=None):
    inverse_mass = jnp.ones(2) if inverse_mass is None else inverse_mass
    metric = gaussian_euclidean(inverse_mass)
    position = {"x": jnp.array([1.0, -0.5])}
    state = init(position, gaussian_log_joint)
    momentum = metric.sample_momentum(key, position["x"])
    return metric, IntegratorState(position, momentum, state.log_joint, state.log_joint_grad)


def hamiltonian(metric, state):
    return -state.log_joint + metric.kinetic_energy(state.momentum)


@pytest.mark.parametrize("inverse_mass", [jnp.ones(2), jnp.array([[1.0, 0.3], [0.3, 0.5]])])
def test_integrator_energy_error_is_second_order(inverse_mass):
    # Velocity Verlet has O(eps^2) energy error over a fixed time: halving eps divides it by ~4.
    # Deterministic (no randomness beyond a fixed momentum); tolerance 2.5..6 brackets the ratio 4.
    metric, start = start_state(jax.random.key(0), inverse_mass)
    step = velocity_verlet(gaussian_log_joint, metric.velocity)
    errors = []
    for eps, n in [(0.1, 10), (0.05, 20)]:
        end = jax.jit(lambda s, eps=eps, n=n: leapfrog_trajectory(step, s, eps, n))(start)
        errors.append(abs(float(hamiltonian(metric, end) - hamiltonian(metric, start))))
    assert errors[0] < 0.05
    assert 2.5 < errors[0] / errors[1] < 6.0


def test_integrator_is_time_reversible():
    # Integrate forward, flip the momentum, integrate back: exact in exact arithmetic; float32 round-off
    # over 40 steps stays far below 1e-4.
    metric, start = start_state(jax.random.key(1))
    step = velocity_verlet(gaussian_log_joint, metric.velocity)
    trajectory = jax.jit(lambda s: leapfrog_trajectory(step, s, 0.1, 40))
    end = trajectory(start)
    back = trajectory(end._replace(momentum=-end.momentum))
    np.testing.assert_allclose(back.position["x"], start.position["x"], atol=1e-4)
    np.testing.assert_allclose(-back.momentum, start.momentum, atol=1e-4)


@pytest.mark.parametrize("n_leapfrogs", [3, 20])  # unrolled and fori_loop paths
def test_trajectory_evaluates_the_gradient_n_leapfrogs_times(n_leapfrogs):
    # A Python-side counter with jit disabled: every log-joint evaluation is a real call.
    calls = []

    def counted(position):
        calls.append(1)
        return gaussian_log_joint(position)

    metric, start = start_state(jax.random.key(0))
    with jax.disable_jit():
        leapfrog_trajectory(velocity_verlet(counted, metric.velocity), start, 0.1, n_leapfrogs)
    assert len(calls) == n_leapfrogs  # the initial gradient is cached in the state: n, not 2n


def test_kernel_gradient_count_in_the_jaxpr():
    # The traced program holds one forward and one backward pass of the log-joint per leapfrog step:
    # count the `sin` primitives of a log-joint that uses sin once (forward) -> n_leapfrogs.
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2) + jnp.sum(jnp.sin(x))
    state = init(jnp.ones(2), log_joint)
    jaxpr = jax.make_jaxpr(lambda s: build_kernel()(jax.random.key(0), s, log_joint, 0.1, jnp.ones(2), 7))(
        state)
    assert str(jaxpr).count(" sin ") == 7


def _run_kernel(key, state, step_size=0.3):
    return build_kernel()(key, state, gaussian_log_joint, step_size, jnp.ones(2), 5)


def test_kernel_contract():
    state = init({"x": jnp.array([0.5, 0.5])}, gaussian_log_joint)
    key = jax.random.key(3)
    eager_state, eager_info = _run_kernel(key, state)  # op by op
    jit_state, jit_info = jax.jit(_run_kernel)(key, state)
    # same structure and dtypes after a step (lax.scan needs this)
    assert jax.tree_util.tree_structure(eager_state) == jax.tree_util.tree_structure(state)
    assert [x.dtype for x in jax.tree_util.tree_leaves(eager_state)] == \
        [x.dtype for x in jax.tree_util.tree_leaves(state)]
    # jit and no-jit agree (float32 round-off only)
    np.testing.assert_allclose(eager_state.position["x"], jit_state.position["x"], rtol=1e-5, atol=1e-6)
    assert bool(eager_info.is_accepted) == bool(jit_info.is_accepted)
    # same key -> same result
    again, _ = jax.jit(_run_kernel)(key, state)
    np.testing.assert_array_equal(again.position["x"], jit_state.position["x"])
    # vmap over chains
    states = jax.vmap(lambda x: init({"x": x}, gaussian_log_joint))(jnp.ones((4, 2)))
    chains, infos = jax.vmap(_run_kernel)(jax.random.split(key, 4), states)
    assert chains.position["x"].shape == (4, 2) and infos.acceptance_rate.shape == (4,)
    assert np.all(np.isfinite(chains.position["x"]))


def test_kernel_works_on_a_plain_array_position():
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    state = init(jnp.zeros(3), log_joint)
    kernel = jax.jit(lambda k, s: build_kernel()(k, s, log_joint, 0.5, jnp.ones(3), 4))
    state, info = kernel(jax.random.key(0), state)
    assert state.position.shape == (3,) and 0.0 <= float(info.acceptance_rate) <= 1.0


def test_non_finite_proposals_are_rejected_and_flagged_divergent():
    # log p = -inf outside x > -1: a long step jumps there; the proposal must be rejected, not crash.
    log_joint = lambda x: jnp.where(x[0] > -1.0, -0.5 * jnp.sum(x ** 2), -jnp.inf)
    state = init(jnp.zeros(1), log_joint)
    keys = jax.random.split(jax.random.key(0), 64)
    new, info = jax.jit(jax.vmap(lambda k: build_kernel()(k, state, log_joint, 3.0, jnp.ones(1), 3)))(keys)
    assert np.all(np.isfinite(new.position)) and np.all(new.position[:, 0] > -1.0)
    bad = ~np.isfinite(np.asarray(info.energy_change))
    assert bad.any()
    assert np.all(np.asarray(info.is_divergent)[bad]) and not np.any(np.asarray(info.is_accepted)[bad])
    assert np.all(np.asarray(info.acceptance_rate)[bad] == 0.0)


def test_huge_step_size_is_divergent():
    log_joint = lambda x: -0.5 * 1e4 * jnp.sum(x ** 2)
    state = init(jnp.ones(2), log_joint)
    _, info = jax.jit(lambda k: build_kernel()(k, state, log_joint, 1.0, jnp.ones(2), 10))(jax.random.key(0))
    assert bool(info.is_divergent) and not bool(info.is_accepted)


def test_dense_metric_momentum_covariance():
    # p ~ N(0, M) with M = inverse_mass^{-1}; with 20000 draws the sample covariance has a standard
    # error below 0.03 per entry for these values: 0.15 is > 5 standard errors.
    inverse_mass = jnp.array([[1.0, 0.5], [0.5, 2.0]])
    metric = gaussian_euclidean(inverse_mass)
    keys = jax.random.split(jax.random.key(0), 20000)
    draws = jax.jit(jax.vmap(lambda k: metric.sample_momentum(k, jnp.zeros(2))))(keys)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T), np.linalg.inv(inverse_mass), atol=0.15)
    with pytest.raises(ValueError, match="inverse_mass_matrix"):
        gaussian_euclidean(jnp.ones((2, 3)))


def test_window_schedule_matches_stan():
    is_collecting, is_window_end = adapt.window_schedule(1000)
    assert list(np.flatnonzero(is_window_end)) == [99, 149, 249, 449, 949]
    assert not is_collecting[:75].any() and is_collecting[75:950].all() and not is_collecting[950:].any()
    short_collect, short_end = adapt.window_schedule(100)   # 15% / 75% / 10%
    assert list(np.flatnonzero(short_end)) == [89] and short_collect[15:90].all()
    assert not adapt.window_schedule(10)[0].any()


def test_welford_matches_numpy():
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    diag = adapt.welford_init(3)
    dense = adapt.welford_init(3, is_dense=True)
    for row in x:
        diag = adapt.welford_update(diag, jnp.asarray(row))
        dense = adapt.welford_update(dense, jnp.asarray(row))
    np.testing.assert_allclose(diag.m2 / 49, np.var(x, 0, ddof=1), rtol=1e-4)
    np.testing.assert_allclose(dense.m2 / 49, np.cov(x.T), rtol=1e-4, atol=1e-5)
    n = 50
    expected = n / (n + 5) * np.var(x, 0, ddof=1) + 1e-3 * 5 / (n + 5)
    np.testing.assert_allclose(adapt.welford_final(diag), expected, rtol=1e-4)


def test_dual_averaging_moves_step_size_toward_target():
    state = adapt.dual_averaging_init(1.0)
    for _ in range(20):   # acceptance far below target -> the step size must shrink
        state = adapt.dual_averaging_update(state, 0.1, 0.8)
    assert float(adapt.dual_averaging_final(state)) < 1.0
    state = adapt.dual_averaging_init(1.0)
    for _ in range(20):
        state = adapt.dual_averaging_update(state, 1.0, 0.8)
    assert float(adapt.dual_averaging_final(state)) > 1.0


def test_find_reasonable_step_size_brackets_half_acceptance():
    # For a standard normal in d = 100, a one-step acceptance of 1/2 needs eps of order d^(-1/4) ~ 0.3;
    # starting from 100 or from 1e-4 the search must land within a factor 2 of the other start's result.
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    state = init(jnp.zeros(100) + 0.1, log_joint)
    search = jax.jit(lambda eps: adapt.find_reasonable_step_size(jax.random.key(0), state, log_joint, eps,
                                                                 jnp.ones(100)))
    big, small = search(100.0), search(1e-4)
    assert 0.05 < float(big) < 2.0 and 0.05 < float(small) < 2.0
    assert 0.25 <= float(big) / float(small) <= 4.0


def test_kernel_acceptance_frequency_matches_its_probability():
    # If the Metropolis test uses a U(0, 1) draw independent of the proposal, the accepted fraction over
    # many independent transitions from one state equals the mean acceptance probability. 4000
    # transitions: standard error of the difference <= sqrt(0.25 / 4000) = 0.008; 0.04 is 5 standard
    # errors (false-failure rate < 1e-6).
    kernel = build_kernel()
    state = init({"x": jnp.array([1.0, -0.5])}, gaussian_log_joint)
    keys = jax.random.split(jax.random.key(5), 4000)
    _, info = jax.jit(jax.vmap(lambda k: kernel(k, state, gaussian_log_joint, 0.9, jnp.ones(2), 3)))(keys)
    rate = float(jnp.mean(info.acceptance_rate))
    assert 0.2 < rate < 0.95   # a step size that rejects often enough for the test to mean something
    assert abs(float(jnp.mean(info.is_accepted)) - rate) < 0.04
