"""The convolutional VAE (`python -m models vae --arch conv`): a tiny run of the command and its errors."""

import json
import math
import os
import subprocess
import sys

import jax
import pytest

import models.__main__
from models.vae import conv
from tests.conftest import LEVEL_0_FLAG, REPO_ROOT


def test_command_trains_and_evaluates(tmp_path):
    """4 SGVB steps (one epoch of 256 packaged digits, batches of 64): the metrics are written and the
    test ELBO has left its value at initialisation (about -550 nats: 784 log 2 = 543 plus the KL of
    an untrained q; a 4-step run gave -427), so -520 is a wide margin. With one importance sample
    the IS log-likelihood is log w of the ELBO's own sample, so the two agree to float32 rounding;
    the evaluation runs z through `[n_particles, n, z_dim]` and reuses the per-epoch test-ELBO
    program (same chunk shape and sample count), so no conv network is compiled for it again.

    The command runs in its own process at XLA's default optimisation level: at the level 0 that
    tests/conftest.py sets, XLA emits the convolutions' gradients as unoptimised loops, and the run
    took 3.4 times as long (300 s against 87 s, with the interpreter's start, on a loaded 2-core
    machine)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT),
               XLA_FLAGS=os.environ.get("XLA_FLAGS", "").replace(LEVEL_0_FLAG, "").strip())
    run = subprocess.run([sys.executable, "-m", "models", "vae", "--arch", "conv", "--out", str(tmp_path),
                          "--epochs", "1", "--n-train", "256", "--batch-size", "64", "--n-test", "25",
                          "--n-importance", "1", "--quiet"], env=env, cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["arch"] == "conv" and metrics["z_dim"] == 40
    assert math.isfinite(metrics["test_log_likelihood"])
    assert -520 < metrics["test_elbo"] < 0
    assert metrics["test_log_likelihood"] == pytest.approx(metrics["test_elbo"], abs=1e-3)
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "reconstructions.png").is_file()
    with pytest.raises(ValueError, match="--arch conv has the Gaussian latent"):
        models.__main__.main(["vae", "--arch", "conv", "--latent", "bernoulli",
                              "--out", str(tmp_path / "bad")])
    with pytest.raises(ValueError, match="z_dim must be positive"):
        conv.make_networks(jax.random.key(0), z_dim=0)
