"""Samplers under bad settings and numerical faults (issue 15, sampler side): bad step sizes and
learning rates are refused at construction, stuck or diverging HMC chains are named in a warning,
SG-MCMC steps with a non-finite gradient are rejected and counted, and the statistical tests also
pass under float64."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
from inference import sgmcmc

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("make", [
    lambda v: inference.HMC(step_size=v), lambda v: inference.NUTS(step_size=v),
    lambda v: inference.ChEES(step_size=v), lambda v: inference.ChEES(learning_rate=v),
    inference.SGLD, inference.PSGLD, inference.SGHMC, inference.SGNHT,
    lambda v: inference.AIS(None, None, type("FakeHMC", (), {"step_size": v})(), {}),
], ids=["hmc", "nuts", "chees", "chees_lr", "sgld", "psgld", "sghmc", "sgnht", "ais"])
@pytest.mark.parametrize("value", [np.inf, np.nan, 0.0, -0.1])
def test_bad_step_sizes_and_learning_rates_are_refused(make, value):
    with pytest.raises(ValueError, match="finite positive"):
        make(value)


def _gaussian(position):
    return -0.5 * jnp.sum(position["x"] ** 2)


def test_stuck_chain_is_named():
    # chain 1 starts where the log-joint's gradient is huge: with a fixed large step it never moves
    log_joint = lambda p: -0.5 * jnp.sum(p["x"] ** 2) - 1e6 * jnp.sum(jnp.maximum(p["x"] - 5.0, 0.0) ** 2)
    init = {"x": jnp.array([[0.0, 0.0], [8.0, 8.0]])}
    with pytest.warns(UserWarning, match=r"HMC: chain\(s\) \[1\] accepted less than 5%"):
        inference.HMC(step_size=0.5, n_leapfrogs=3).run(jax.random.key(0), log_joint, init, n_samples=30)


SGMCMC_SAMPLERS = [sgmcmc.SGLD(0.05), sgmcmc.PSGLD(0.05), sgmcmc.SGHMC(0.05), sgmcmc.SGNHT(0.05)]


@pytest.mark.parametrize("sampler", SGMCMC_SAMPLERS, ids=["sgld", "psgld", "sghmc", "sgnht"])
def test_non_finite_gradient_steps_are_rejected(sampler):
    # the gradient is NaN wherever |x[0]| > 0.2: those steps must keep the previous position
    log_joint = lambda p: _gaussian(p) + jnp.where(jnp.abs(p["x"][0]) > 0.2, jnp.nan, 0.0) * p["x"][0]
    init = {"x": jnp.zeros(2)}
    with pytest.warns(UserWarning, match=r"chain\(s\) \[0\] rejected"):
        samples, info = sgmcmc.sample(jax.random.key(0), sampler, log_joint, None, init, n_samples=200,
                                      progress_bar=False)
    assert np.all(np.isfinite(samples["x"]))
    assert np.asarray(info.is_rejected).sum() > 0


@pytest.mark.slow
def test_statistical_tests_pass_under_float64():
    # a compact statistical set (exact-posterior MCSE tests of tests/inference/test_init_and_supports.py)
    # run once with jax_enable_x64, in a subprocess so that the setting does not leak into other tests
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "tests/inference/test_init_and_supports.py", "-k", "dependent_support or deterministic"]
    out = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "2 passed" in out.stdout


def test_warning_filter_does_not_hide_healthy_runs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inference.HMC(step_size=0.5, n_leapfrogs=3).run(jax.random.key(0), _gaussian,
                                                        {"x": jnp.zeros((2, 2))}, n_samples=30)
