"""Runs one small `fit` on one device, on 4 forced host devices, or as one of 2 processes.

Used by `test_train_sharding.py` in subprocesses, because the device count (XLA_FLAGS) and
`jax.distributed` must be set before JAX starts:

  python -m tests.inference.distributed_fit single OUT
  python -m tests.inference.distributed_fit mesh OUT              (4 forced host devices, Auto mesh axes)
  python -m tests.inference.distributed_fit explicit OUT          (the same, jax.make_mesh: Explicit axes)
  python -m tests.inference.distributed_fit process OUT PORT ID   (2 processes x 2 devices)

Each writes the trained parameters and the cost history to OUT (an .npz; process 0 only). The
"explicit" mode also checks that SG-MCMC chains on a 2 x 2 ("chains", "data") mesh equal the
one-device run (`check_sgmcmc_mesh`); the "single" and "process" modes also write SG-MCMC samples
(`sgmcmc_*`; in "process" on a 2 x 2 mesh over both processes, each holding its own half of the
rows: `check_sgmcmc_two_processes`).
"""

from __future__ import annotations

import functools
import os
import sys

N, BATCH = 64, 16


@functools.lru_cache(maxsize=1)
def optimizer():
    """One optimizer object for every run in the process: one compiled program per configuration."""
    import optax
    return optax.adam(0.05)


def data():
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3)).astype(np.float32)
    y = (np.sin(x @ np.array([1.0, -2.0, 0.5])) + 0.1 * rng.normal(size=N)).astype(np.float32)
    return {"x": x, "y": y}


def loss_fn(params, key, batch, state):
    import jax
    import jax.numpy as jnp
    hidden = jnp.tanh(batch["x"] @ params["w1"] + params["b1"])
    noise = 0.01 * jax.random.normal(key, batch["y"].shape)          # key use must not depend on sharding
    cost = jnp.mean((hidden @ params["w2"] - batch["y"] + noise) ** 2)
    return cost, (state, {"noise": jnp.mean(noise)})


def check_user_batches(rows, mesh):
    """Batches from a callable, split over the mesh, equal the same batches on one device."""
    import numpy as np
    batches = [{k: v[i:i + BATCH] for k, v in rows.items()} for i in range(0, N, BATCH)]
    on_mesh, alone = (run(lambda epoch: batches, m).params for m in (mesh, None))
    for name in on_mesh:
        np.testing.assert_allclose(np.asarray(on_mesh[name]), np.asarray(alone[name]), rtol=1e-4, atol=1e-5)


def check_resume_on_mesh(rows, mesh, straight, directory):
    """A run checkpointed on the mesh (by every process) and resumed ends where the uninterrupted one does."""
    import numpy as np
    run(rows, mesh, n_epochs=2, checkpoint_dir=directory)
    resumed = run(rows, mesh, checkpoint_dir=directory, resume=True)
    assert resumed.params["w1"].sharding.is_fully_replicated
    for name in straight.params:
        np.testing.assert_allclose(np.asarray(resumed.params[name]), np.asarray(straight.params[name]),
                                   rtol=1e-6, atol=1e-7)


def sgmcmc_model_fn(batch):
    """Linear regression with a gamma noise precision (a constrained latent), likelihood rescaled."""
    import jax.numpy as jnp

    import ppl
    from inference import sgmcmc

    @ppl.meta_bayesian_net
    def regression(x):
        bn = ppl.BayesianNet()
        w = bn.normal("w", jnp.zeros(3), std=1.0, group_ndims=1)
        precision = bn.gamma("precision", 2.0, 1.0)
        bn.normal("y", x @ w, std=1.0 / jnp.sqrt(precision), group_ndims=1)
        return bn

    model = regression(batch["x"])
    model.log_joint = sgmcmc.scaled_log_joint(N / batch["x"].shape[0], ["y"])
    return model, {"y": batch["y"]}


def check_sgmcmc_mesh(mesh):
    """SG-MCMC chains on a ("chains", "data") mesh equal the one-device run; bad sizes name the axis."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import pytest

    from inference import sgmcmc
    rows, init = data(), {"w": jnp.zeros(3), "precision": jnp.asarray(1.0)}
    common = dict(batch_size=BATCH, n_epochs=2, n_chains=4, thinning=2, progress_bar=False)
    sampler = sgmcmc.SGHMC(1e-3)
    alone = sgmcmc.sample(jax.random.key(3), sampler, sgmcmc_model_fn, rows, init, **common)
    sharded = sgmcmc.sample(jax.random.key(3), sampler, sgmcmc_model_fn, rows, init, mesh=mesh, **common)
    assert sharded.state.sampler.position["w"].sharding.spec[0] == "chains"
    assert len(sharded.state.sampler.position["w"].sharding.device_set) == 4
    assert np.all(sharded.samples["precision"] > 0)
    # same keys, batches and steps; only the order of the gradient sum over the 2 "data" devices
    # differs (float32 round-off, ~1e-7 relative per step, over 8 steps)
    for name in init:
        np.testing.assert_allclose(sharded.samples[name], alone.samples[name], rtol=1e-4, atol=1e-5)
    for bad, axis in ((dict(n_chains=3), "n_chains=3 .* 'chains' axis of size 2"),
                      (dict(batch_size=5), "batch_size=5 .* 'data' axis of size 2")):
        with pytest.raises(ValueError, match=axis):
            sgmcmc.sample(jax.random.key(3), sampler, sgmcmc_model_fn, rows, init, mesh=mesh,
                          **{**common, **bad})


def sgmcmc_run(rows, mesh):
    """SG-MCMC chains (4, thinned) over the rows, on `mesh` or (None) on one device."""
    import jax
    import jax.numpy as jnp

    from inference import sgmcmc
    init = {"w": jnp.zeros(3), "precision": jnp.asarray(1.0)}
    return sgmcmc.sample(jax.random.key(3), sgmcmc.SGHMC(1e-3), sgmcmc_model_fn, rows, init, batch_size=BATCH,
                         n_epochs=2, n_chains=4, thinning=2, progress_bar=False, mesh=mesh)


def check_sgmcmc_two_processes(rows, mesh):
    """SG-MCMC on 2 processes x 2 devices, each process holding its own half of the rows.

    The mesh is 2 x 2 ("chains", "data") with the "data" axis across the processes: each process
    holds one half of the rows, and its 2 devices one "data" column (both rows of chains). Returns
    the result (its samples are compared with the single-device run's by the test). Rows of another
    size in one process than in the other are refused in both, each size named, before any
    collective could crash or hang on them.
    """
    import jax
    import numpy as np
    import pytest

    import inference
    devices = np.asarray(jax.devices()).reshape(2, 2).T        # row c: (process 0's, process 1's) device
    mesh = jax.sharding.Mesh(devices, ("chains", "data"))
    half = N // jax.process_count()
    start = jax.process_index() * half
    own = {k: v[start:start + half] for k, v in rows.items()}
    result = sgmcmc_run(inference.shard_data(own, mesh), mesh)
    assert result.samples["w"].shape == (4, 4, 3), result.samples["w"].shape   # all chains, gathered
    ragged = {k: v[:half - 2 * jax.process_index()] for k, v in own.items()}   # 32 rows, then 30
    with pytest.raises(ValueError, match="process 0: 32, process 1: 30"):
        inference.shard_data(ragged, mesh)
    with pytest.raises(ValueError, match="sgmcmc.sample: the data .* process 0: 32, process 1: 30"):
        sgmcmc_run(ragged, mesh)
    return result


def run(rows, mesh, n_epochs=3, **kwargs):
    import jax
    import jax.numpy as jnp

    import inference
    keys = jax.random.split(jax.random.key(0), 3)
    params = {"w1": jax.random.normal(keys[0], (3, 8)), "b1": jnp.zeros(8),
              "w2": jax.random.normal(keys[1], (8,))}
    batch_size = BATCH if isinstance(rows, dict) else None
    return inference.fit(keys[2], loss_fn, params, optimizer(), rows, n_epochs=n_epochs,
                         batch_size=batch_size, mesh=mesh, progress_bar=False, **kwargs)


def save(out, result, chains=None):
    import numpy as np

    import inference.train_data as train_data
    params = train_data.to_host(result.params)
    samples = {} if chains is None else {f"sgmcmc_{k}": v for k, v in chains.samples.items()}
    np.savez(out, cost=result.history["cost"], noise=result.history["noise"], **params, **samples)


def main(argv):
    mode, out = argv[0], argv[1]
    if mode == "process":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    import numpy as np
    if mode == "process":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"localhost:{argv[2]}", num_processes=2,
                                   process_id=int(argv[3]))
    import inference
    rows = data()
    chains = None
    if mode == "single":
        result = run(rows, None)
        chains = sgmcmc_run(rows, None)
    else:
        if mode == "mesh":
            mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
        else:                                  # jax.make_mesh: Explicit axes (sharding in types)
            mesh = jax.make_mesh((jax.device_count(),), ("data",))
        assert mesh.shape["data"] == 4, jax.devices()
        if mode == "process":                  # each process loads only its own half of the rows
            half = N // jax.process_count()
            start = jax.process_index() * half
            rows = inference.shard_data({k: v[start:start + half] for k, v in rows.items()}, mesh)
        result = run(rows, mesh)
        if mode != "process":
            check_user_batches(data(), mesh)
        if mode == "explicit":   # once: a jax.make_mesh mesh, whose Explicit axes the driver turns Auto
            check_sgmcmc_mesh(jax.make_mesh((2, 2), ("chains", "data")))
        check_resume_on_mesh(rows, mesh, result, out + ".checkpoints")
        assert len(result.params["w1"].sharding.device_set) == 4, result.params["w1"].sharding
        assert result.params["w1"].sharding.is_fully_replicated
        if mode == "process":
            chains = check_sgmcmc_two_processes(data(), mesh)
    if jax.process_index() == 0:
        save(out, result, chains)
    print("OK", mode, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
