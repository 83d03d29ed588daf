"""`fit` with a data mesh: 4 forced host devices, and 2 processes under `jax.distributed` (CPU
collectives), each loading its own half of the data, equal the single-device run. The 4-device
explicit run also checks SG-MCMC chains on a ("chains", "data") mesh against the one-device run
(`distributed_fit.check_sgmcmc_mesh`); the 2-process run also runs SG-MCMC chains on a mesh over
both processes, each holding its own half of the rows, and compares them with the single-device
chains (`distributed_fit.check_sgmcmc_two_processes`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT


def run_mode(*args, devices=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    env.pop("XLA_FLAGS", None)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.Popen([sys.executable, "-m", "tests.inference.distributed_fit", *map(str, args)],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()                         # e.g. one process waiting for a peer that failed
        out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    return out


def assert_same_run(a, b):
    # Same batches, keys and steps; only the order of the gradient reduction differs across devices
    # (float32 sums of 16 terms in another order: relative differences ~1e-7 per step).
    for name in ("w1", "b1", "w2", "cost", "noise"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "single.npz"
    assert "OK single" in finish(run_mode("single", out))
    return np.load(out)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["mesh", "explicit"])
def test_four_device_mesh_equals_single_device(single, tmp_path, mode):
    assert f"OK {mode}" in finish(run_mode(mode, tmp_path / "mesh.npz", devices=4))
    assert_same_run(np.load(tmp_path / "mesh.npz"), single)


@pytest.mark.slow
def test_two_processes_each_with_its_own_shard_equal_single_device(single, tmp_path):
    with socket.socket() as s:                 # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    processes = [run_mode("process", tmp_path / "process.npz", port, pid) for pid in (0, 1)]
    outputs = [finish(p) for p in processes]
    assert all("OK process" in out for out in outputs)
    together = np.load(tmp_path / "process.npz")
    assert_same_run(together, single)
    # SG-MCMC: same keys, batches and steps; the gradient sums over the 2 "data" devices (one per
    # process) are ordered differently (float32 round-off, ~1e-7 relative per step, over 8 steps)
    for name in ("sgmcmc_w", "sgmcmc_precision"):
        assert together[name].shape[:2] == (4, 4), together[name].shape
        np.testing.assert_allclose(together[name], single[name], rtol=1e-4, atol=1e-5, err_msg=name)
