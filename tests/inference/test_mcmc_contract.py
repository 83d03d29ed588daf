"""Contract tests of the HMC-family drivers (`HMC`, `NUTS`, `ChEES`), parameterised over the three.

Compile once (a program per static key, none on later calls with new data of the same shapes),
bounded memory, the same key giving the same result, resume equal to one long run bit for bit,
a state that survives `np.savez`, float64 throughout under `jax_enable_x64`, the result types, and
clear errors.
"""

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
import ppl
from inference.compile_cache import PROGRAMS
from inference.mcmc_result import MCMCResult, MCMCState

_BACKEND_COMPILES = []
_COUNTING = [False]


def _on_event(name, seconds, **kwargs):
    if _COUNTING[0] and name == "/jax/core/compile/backend_compile_duration":
        _BACKEND_COMPILES.append(seconds)


jax.monitoring.register_event_duration_secs_listener(_on_event)


def samplers():
    return {"hmc": inference.HMC(step_size=0.2, n_leapfrogs=4, adaptation="window"),
            "nuts": inference.NUTS(max_tree_depth=5),
            "chees": inference.ChEES(max_leapfrogs=20)}


SAMPLERS = sorted(samplers())


@ppl.meta_bayesian_net
def regression(x, prior_scale):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=prior_scale, group_ndims=1)
    noise = bn.gamma("noise", 2.0, 2.0)
    bn.normal("y", x @ w, std=noise, group_ndims=1)
    return bn


def data(seed, n=20, d=3, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    y = x @ np.array([0.5, -1.0, 2.0][:d], dtype) + rng.normal(size=n).astype(dtype)
    return jnp.asarray(x), jnp.asarray(y)


def run(sampler, key, x, y, **kwargs):
    kwargs = {"n_samples": 20, "n_warmup": 30, "n_chains": 4, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # the short-warmup notice
        return sampler.sample(key, regression(x, 1.0), {"y": y}, **kwargs)


@pytest.mark.parametrize("name", SAMPLERS)
def test_compiles_once_across_calls_with_new_data(name):
    # Three calls, each with new data arrays of the same shapes and a new sampler object of the same
    # configuration: one sampling program is built, and the second and third calls compile nothing at all
    # (no XLA backend compilation, not even of small eager ops).
    builds = PROGRAMS.n_builds
    for call in range(3):
        x, y = data(call)
        _BACKEND_COMPILES.clear()
        _COUNTING[0] = True
        try:
            result = jax.block_until_ready(run(samplers()[name], jax.random.key(call), x, y))
        finally:
            _COUNTING[0] = False
        if call > 0:
            assert _BACKEND_COMPILES == [], f"call {call} compiled {len(_BACKEND_COMPILES)} programs"
        assert np.all(np.isfinite(result.samples["w"]))
    # the sampling program, and the (sampler-independent) init program unless an earlier test built it
    assert PROGRAMS.n_builds - builds in (1, 2)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc (Linux)")
def test_memory_does_not_grow_per_call():
    # 30 calls with new data after 3 warm-up calls. Tolerance: 16 MiB over the 30 calls (~0.5 MiB
    # per call). Recompiling per call, as before the compile cache, kept one executable per call
    # (about 1-3 MiB each for this model on CPU), which this bound detects; allocator noise and
    # host copies of the results stay well below it.
    sampler = samplers()["nuts"]
    for call in range(3):
        x, y = data(call)
        jax.block_until_ready(run(sampler, jax.random.key(call), x, y))
    before = _rss_bytes()
    for call in range(30):
        x, y = data(100 + call)
        jax.block_until_ready(run(sampler, jax.random.key(call), x, y))
    growth = _rss_bytes() - before
    assert growth < 16 * 2 ** 20, f"RSS grew by {growth / 2 ** 20:.1f} MiB over 30 calls"


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_key_same_result_and_result_types(name):
    x, y = data(0)
    first = run(samplers()[name], jax.random.key(7), x, y)
    again = run(samplers()[name], jax.random.key(7), x, y)
    other = run(samplers()[name], jax.random.key(8), x, y)
    jax.tree.map(np.testing.assert_array_equal, first.samples, again.samples)
    assert not np.array_equal(first.samples["w"], other.samples["w"])
    assert isinstance(first, MCMCResult) and isinstance(first.state, MCMCState)
    samples, info = first                                    # unpacks into two, as before
    assert samples["w"].shape == (4, 20, 3) and samples["noise"].shape == (4, 20)
    assert np.all(np.asarray(samples["noise"]) > 0)           # constrained latent in its own space
    for field in ["acceptance_rate", "is_divergent", "energy", "log_joint", "n_leapfrogs"]:
        assert getattr(info, field).shape == (4, 20), field
    assert info.step_size.shape == (4,) and info.inverse_mass_matrix.shape == (4, 4)
    assert info.warmup_acceptance_rate.shape == (4, 30)
    assert np.all(np.asarray(info.n_leapfrogs) >= 1)
    assert (info.tree_depth is not None) == (name == "nuts")
    assert (info.trajectory_length is not None) == (name == "chees")


@pytest.mark.parametrize("name", SAMPLERS)
def test_resume_equals_one_long_run_bit_for_bit(name, tmp_path):
    # A run of 5 draws thinned by 2 (transitions 2, 4, ..., 10), then 10 more resumed from its state
    # after a round trip through np.savez, equal one run of 20 unthinned draws with the same key,
    # exactly: the thinned draws are the long run's transitions 2, 4, ..., 10 and the resumed ones its
    # transitions 11-20. The long run has the sizes of `run`'s defaults, so it reuses the program the
    # tests above compiled; only the thinned run and the resume compile.
    x, y = data(1)
    key = jax.random.key(3)
    long = run(samplers()[name], key, x, y, n_samples=20)
    first = run(samplers()[name], key, x, y, n_samples=5, thinning=2)
    leaves, treedef = jax.tree.flatten(first.state)
    np.savez(tmp_path / "state.npz", *[np.asarray(leaf) for leaf in leaves])
    with np.load(tmp_path / "state.npz") as f:
        state = jax.tree.unflatten(treedef, [f[f"arr_{i}"] for i in range(len(leaves))])
    assert int(first.state.iteration) == 10
    second = run(samplers()[name], key, x, y, n_samples=10, n_warmup=None, resume=state)
    assert int(second.state.iteration) == 20
    for latent in ["w", "noise"]:
        expected = np.asarray(long.samples[latent])
        np.testing.assert_array_equal(expected[:, 1:10:2], np.asarray(first.samples[latent]))
        np.testing.assert_array_equal(expected[:, 10:], np.asarray(second.samples[latent]))
    np.testing.assert_array_equal(np.asarray(long.info.step_size), np.asarray(second.info.step_size))


@pytest.mark.parametrize("name", SAMPLERS)
def test_float64_throughout(name):
    # Under jax_enable_x64 the positions are float64, and so are the step size, the mass matrix,
    # the adaptation and every float output (no float32 step size in a float64 carry).
    with jax.enable_x64(True):
        x, y = data(2, dtype=np.float64)
        result = run(samplers()[name], jax.random.key(0), x, y, n_warmup=150)
        floats = [leaf for leaf in jax.tree.leaves((result.samples, result.info, result.state))
                  if jnp.issubdtype(leaf.dtype, jnp.floating)]
        assert floats and all(leaf.dtype == jnp.float64 for leaf in floats)
        assert np.all(np.isfinite(result.samples["w"]))
        assert float(np.mean(result.info.acceptance_rate)) > 0.3


def test_progress_bar_changes_nothing():
    # The bar's host callbacks live in the driver's scan over time, shared by the three samplers: HMC,
    # the cheapest to compile, checks them (the plain run reuses the program compiled above).
    x, y = data(0)
    plain = run(samplers()["hmc"], jax.random.key(1), x, y)
    with_bar = run(samplers()["hmc"], jax.random.key(1), x, y, progress_bar=True)
    np.testing.assert_array_equal(np.asarray(plain.samples["w"]), np.asarray(with_bar.samples["w"]))


def test_deprecated_names_warn_and_work():
    x, y = data(0)
    with pytest.warns(DeprecationWarning, match="'thin' is deprecated.*'thinning'"):
        old = run(samplers()["hmc"], jax.random.key(1), x, y, thin=2)
    new = run(samplers()["hmc"], jax.random.key(1), x, y, thinning=2)
    np.testing.assert_array_equal(np.asarray(old.samples["w"]), np.asarray(new.samples["w"]))
    with pytest.warns(DeprecationWarning, match="mass_schedule is deprecated.*adaptation="):
        hmc = inference.HMC(adapt_mass=True, mass_schedule="exponential")
    assert hmc.mass_schedule == "exponential" and not hmc.adapt_step_size
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        run(samplers()["hmc"], jax.random.key(1), x, y, bogus=1)


def test_adaptation_argument_and_its_aliases():
    assert (inference.HMC().adapt_step_size, inference.HMC().mass_schedule) == (False, None)   # ZhuSuan
    assert (inference.NUTS().adapt_step_size, inference.NUTS().mass_schedule) == (True, "windowed")
    hmc = inference.HMC(adapt_step_size=True, adapt_mass=True)
    assert (hmc.adapt_step_size, hmc.mass_schedule) == (True, "windowed")
    assert inference.HMC(adaptation="exponential").mass_schedule == "exponential"
    assert inference.NUTS(adaptation="step_size").mass_schedule is None
    assert inference.NUTS(adapt_mass=False).mass_schedule is None
    with pytest.raises(ValueError, match="contradicts"):
        inference.HMC(adaptation="none", adapt_step_size=True)
    with pytest.raises(ValueError, match="adaptation must be one of"):
        inference.NUTS(adaptation="stan")
    with pytest.raises(ValueError, match="step_size"):
        inference.NUTS(step_size=float("inf"))


def test_errors_are_raised_before_tracing():
    x, y = data(0)
    first = run(samplers()["nuts"], jax.random.key(0), x, y)
    with pytest.raises(ValueError, match="without warmup"):
        run(samplers()["nuts"], jax.random.key(0), x, y, n_warmup=10, resume=first.state)
    with pytest.raises(ValueError, match="init and resume"):
        run(samplers()["nuts"], jax.random.key(0), x, y, n_warmup=None, init={"noise": 1.0},
            resume=first.state)
    with pytest.raises(ValueError, match="at least 2 chains"):
        run(samplers()["chees"], jax.random.key(0), x, y, n_chains=1)
    with pytest.raises(ValueError, match="n_samples"):
        run(samplers()["hmc"], jax.random.key(0), x, y, n_samples=0)
    with pytest.raises(ValueError, match=r"init\['w'\] has shape \(2,\)"):
        run(samplers()["hmc"], jax.random.key(0), x, y, init={"w": jnp.zeros(2)})
    with pytest.raises(TypeError, match="ppl.MetaBayesianNet"):
        samplers()["nuts"].sample(jax.random.key(0), lambda w: 0.0, {"y": y}, n_samples=2)


@ppl.meta_bayesian_net
def numpy_builder(x):
    bn = ppl.BayesianNet()
    scale = float(np.std(np.asarray(x)))     # uses the argument's values: cannot be traced
    bn.normal("w", jnp.zeros(2), std=scale, group_ndims=1)
    return bn


def test_builder_that_needs_concrete_arguments_still_samples():
    # A builder calling NumPy on its array argument cannot take a tracer: the driver retries with
    # the arguments static (a warning says each new array compiles anew) and samples correctly.
    x = jnp.asarray(np.random.default_rng(0).normal(size=50), jnp.float32)
    with pytest.warns(UserWarning, match="uses the values of its array arguments"):
        result = inference.NUTS().sample(jax.random.key(0), numpy_builder(x), {}, n_samples=50, n_warmup=50,
                                         n_chains=2)
    assert result.samples["w"].shape == (2, 50, 2) and np.all(np.isfinite(result.samples["w"]))


def test_run_on_a_plain_log_joint_reuses_its_program():
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    builds = PROGRAMS.n_builds
    for seed in range(3):
        inference.NUTS().run(jax.random.key(seed), log_joint, jnp.zeros((2, 3)) + seed, n_samples=5,
                             n_warmup=5)
    assert PROGRAMS.n_builds - builds == 1


def test_new_starting_values_reuse_the_program():
    # init values, even Python numbers, are traced: another start compiles nothing
    x, y = data(0)
    builds = PROGRAMS.n_builds
    for start in [0.5, 1.0, 2.0]:
        run(samplers()["nuts"], jax.random.key(0), x, y, init={"noise": start})
    assert PROGRAMS.n_builds - builds == 1
