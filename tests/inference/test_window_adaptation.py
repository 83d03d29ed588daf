"""`window_adaptation` on its own (BlackJAX's shape) and as the drivers compose it (one kernel)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
from inference.hmc import build_kernel, nuts, window_adaptation

SCALES = jnp.array([0.1, 1.0, 10.0])


def scaled_log_joint(x):
    return -0.5 * jnp.sum((x / SCALES) ** 2)


@pytest.mark.parametrize("kernel, extra", [(nuts.build_kernel(), {}), (build_kernel(), {"n_leapfrogs": 8})])
def test_run_tunes_step_size_and_mass(kernel, extra):
    # Stan's windows on independent N(0, s^2), s = 0.1, 1, 10: the last slow window (500 draws of 1000)
    # estimates each variance with a relative standard error of about sqrt(2 / ESS) < 15% for the ESS
    # these chains reach, so a factor-2 band holds with a wide margin; the regularisation toward 1e-3
    # (5 / (n + 5) of it) is negligible. The step size is then limited by the smallest scale no more.
    warmup = window_adaptation(kernel, scaled_log_joint, 1000, **extra)
    (state, parameters), infos = jax.jit(warmup.run)(jax.random.key(0), jnp.ones(3))
    ratio = np.asarray(parameters["inverse_mass_matrix"]) / np.asarray(SCALES) ** 2
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    assert float(parameters["step_size"]) > 0.3        # the identity metric would force ~0.1
    assert infos.acceptance_rate.shape == (1000,) and state.position.shape == (3,)
    # dual averaging's last stretch (the final 50-iteration buffer) hovers around the 0.8 target;
    # 0.15 is an engineering margin for the averaged acceptance of 50 correlated transitions
    assert abs(float(np.mean(infos.acceptance_rate[-50:])) - 0.8) < 0.15


def test_schedules_and_errors():
    warmup = window_adaptation(nuts.build_kernel(), scaled_log_joint, 0)
    (state, parameters), infos = warmup.run(jax.random.key(0), jnp.ones(3), step_size=0.5)
    assert float(parameters["step_size"]) == 0.5 and infos.acceptance_rate.shape == (0,)
    exponential = window_adaptation(nuts.build_kernel(), scaled_log_joint, 200, mass_schedule="exponential")
    (_, parameters), _ = jax.jit(exponential.run)(jax.random.key(1), jnp.ones(3))
    assert parameters["inverse_mass_matrix"].shape == (3,)
    dense = window_adaptation(nuts.build_kernel(), scaled_log_joint, 200, dense_mass=True)
    (_, parameters), _ = jax.jit(dense.run)(jax.random.key(1), jnp.ones(3))
    assert parameters["inverse_mass_matrix"].shape == (3, 3)
    with pytest.raises(ValueError, match="mass_schedule"):
        window_adaptation(nuts.build_kernel(), scaled_log_joint, 10, mass_schedule="stan")
    with pytest.raises(ValueError, match="diagonal only"):
        window_adaptation(nuts.build_kernel(), scaled_log_joint, 10, mass_schedule="exponential",
                          dense_mass=True)


@pytest.mark.parametrize("sampler", [inference.HMC(0.1, 5, adaptation="window"), inference.NUTS(),
                                     inference.ChEES()], ids=["hmc", "nuts", "chees"])
def test_warmup_and_sampling_share_one_kernel(sampler):
    # The whole run's program holds the log-joint (which calls sin once) in exactly three places:
    # the initial gradient, the one trajectory loop used by warmup and sampling alike, and the
    # step-size search's one-step probe. Without warmup: two. A second kernel for warmup would add one.
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2) + jnp.sum(jnp.sin(x))
    positions = jnp.zeros((4, 3))
    for n_warmup, expected in [(0, 2), (200, 3)]:
        run = lambda key, p, n=n_warmup: sampler.run(key, log_joint, p, n_samples=5, n_warmup=n).samples
        jaxpr = str(jax.make_jaxpr(run)(jax.random.key(0), positions))
        assert jaxpr.count(" sin ") == expected, n_warmup


def test_short_warmup_warning_for_nuts_too():
    with pytest.warns(UserWarning, match="n_warmup=40 is shorter than the 150") as record:
        inference.NUTS().run(jax.random.key(0), lambda x: -0.5 * jnp.sum(x ** 2), jnp.zeros((2, 2)),
                             n_samples=5, n_warmup=40)
    assert record[0].filename == __file__


@pytest.mark.parametrize("dense", [False, True])
def test_step_size_searches_in_lockstep_equal_the_vmapped_search(dense):
    # chains whose searches end after different numbers of probes (some double, some halve), so
    # the lockstep loop keeps finished chains frozen while the others go on
    scales = jnp.array([0.1, 1.0, 3.0])
    log_joint = lambda x: -0.5 * jnp.sum((x / scales) ** 2)
    positions = jnp.array([[0.1, 0.5, -1.0], [1.0, -2.0, 0.3], [0.0, 0.0, 0.0], [0.2, 0.1, 5.0]])
    states = jax.vmap(lambda x: inference.hmc.init(x, log_joint))(positions)
    keys = jax.random.split(jax.random.key(4), 4)
    step_sizes = jnp.array([1e-4, 0.5, 10.0, 0.05])
    imm = jnp.ones(3) if not dense else jnp.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 2.0]])
    imms = jnp.broadcast_to(imm, (4, *imm.shape))
    vmapped = jax.jit(jax.vmap(inference.hmc.find_reasonable_step_size, in_axes=(0, 0, None, 0, 0)),
                      static_argnums=2)(keys, states, log_joint, step_sizes, imms)
    lockstep = jax.jit(inference.hmc.adaptation.find_reasonable_step_sizes, static_argnums=2)(
        keys, states, log_joint, step_sizes, imms)
    assert len(set(np.round(np.log2(np.asarray(vmapped / step_sizes))).tolist())) > 1   # different lengths
    np.testing.assert_array_equal(lockstep, vmapped)   # powers of two of the same starts: exact


def test_lockstep_step_size_search_names_mismatched_chain_axes():
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    states = jax.vmap(lambda x: inference.hmc.init(x, log_joint))(jnp.zeros((3, 2)))
    keys = jax.random.split(jax.random.key(0), 3)
    search = inference.hmc.adaptation.find_reasonable_step_sizes
    with pytest.raises(ValueError, match=r"step_size \[C\] \(\(\)\)"):
        search(keys, states, log_joint, 0.1, jnp.ones((3, 2)))
    with pytest.raises(ValueError, match=r"inverse_mass_matrix .*\(\(2,\)\)"):
        search(keys, states, log_joint, jnp.full(3, 0.1), jnp.ones(2))
    with pytest.raises(ValueError, match=r"one key per chain \(\(2,\) given\)"):
        search(keys[:2], states, log_joint, jnp.full(3, 0.1), jnp.ones((3, 2)))
