"""Chains shard across devices: 4 forced host devices in ONE subprocess (XLA_FLAGS is read at start-up),
covering `HMC.run` and `NUTS.sample`, the default placement, an explicit `mesh=` and its size check."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np, pytest
    from jax.sharding import Mesh
    import ppl
    from inference.hmc import HMC, NUTS
    assert jax.device_count() == 4, jax.devices()
    mesh4 = jax.make_mesh((4,), ("chains",))
    mesh1 = Mesh(np.asarray(jax.devices()[:1]), ("chains",))
    n_devices = lambda x: len(x.sharding.device_set)
    # Tolerance: each chain's arithmetic is its own, but XLA vectorises over 2 chains per device
    # differently from 8 on one, so results differ by round-off; in float64 that is ~1e-15 per
    # operation and < 1e-9 after these 40 transitions (measured ~1e-13). A chain that mixed in
    # another chain's numbers, or a different key, would be off by O(1).
    tolerance = dict(rtol=1e-9, atol=1e-9)

    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    hmc = HMC(step_size=0.3, n_leapfrogs=5, adapt_step_size=True)
    key, init = jax.random.key(0), jnp.zeros((8, 3))
    default, _ = hmc.run(key, log_joint, init, n_samples=20, n_warmup=20)        # all devices by default
    sharded, _ = hmc.run(key, log_joint, init, n_samples=20, n_warmup=20, mesh=mesh4)
    single, _ = hmc.run(key, log_joint, init, n_samples=20, n_warmup=20, mesh=mesh1)
    assert (n_devices(default), n_devices(sharded), n_devices(single)) == (4, 4, 1)
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), **tolerance)
    np.testing.assert_array_equal(np.asarray(default), np.asarray(sharded))

    @ppl.meta_bayesian_net
    def build():
        bn = ppl.BayesianNet()
        z = bn.normal("z", jnp.zeros(2), std=1.0, group_ndims=1)
        bn.deterministic("total", jnp.sum(z))
        bn.normal("y", jnp.sum(z), std=0.5)
        return bn

    nuts, observed = NUTS(step_size=0.3, adapt_mass=False), {"y": jnp.asarray(1.0)}
    run = lambda mesh: nuts.sample(key, build(), observed, n_samples=20, n_warmup=20, n_chains=4, mesh=mesh)
    sharded, single = run(mesh4), run(mesh1)
    assert n_devices(sharded.samples["z"]) == 4 and n_devices(single.samples["z"]) == 1
    for name in ("z", "total"):
        np.testing.assert_allclose(np.asarray(sharded.samples[name]), np.asarray(single.samples[name]),
                                   **tolerance)
    np.testing.assert_array_equal(np.asarray(sharded.info.n_leapfrogs), np.asarray(single.info.n_leapfrogs))
    with pytest.raises(ValueError, match="n_chains=6 is not divisible by the size 4"):
        nuts.sample(key, build(), observed, n_samples=5, n_warmup=5, n_chains=6, mesh=mesh4)
    with pytest.raises(ValueError, match="axis named 'chains'"):
        hmc.run(key, log_joint, init, n_samples=5, mesh=jax.make_mesh((4,), ("data",)))
    print("OK", np.abs(np.asarray(sharded.samples["z"]) - np.asarray(single.samples["z"])).max())
""")


@pytest.mark.slow
def test_chains_shard_across_four_host_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout, result.stdout
