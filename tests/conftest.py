"""Shared pytest fixtures for the whole suite.

Nothing here changes global JAX configuration: float64 and rank-promotion checks are switched on
only inside the tests that need them (`with jax.enable_x64(True):`).

LAPACK (OpenBLAS, behind jax's CPU Cholesky and triangular solves) is limited to one thread unless
the environment says otherwise: `pytest -n 2` on two cores otherwise oversubscribes them, and
OpenBLAS's spinning threads then make a 389 x 389 Cholesky take about 350 ms instead of 1.3 ms
(measured under load on the 2-core CI-sized machine). The executed notebooks inherit the setting.

XLA compiles the tests' programs at backend optimisation level 0 (`XLA_FLAGS`, unless the
environment already sets a level): the suite's programs are small and run briefly, so LLVM's
optimisation passes cost far more than they save (the `vae` command's test run took 38% less CPU
time, 19.6 s against 31.7 s). Float semantics are unchanged (XLA never enables fast-math on CPU by
default); only the compiled code's speed differs. The subprocess tests inherit it; the notebooks,
which train for real, run at XLA's default level (tests/notebooks).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
LEVEL_0_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + LEVEL_0_FLAG).strip()

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def key() -> jax.Array:
    """A fresh JAX PRNG key; tests split it into named subkeys rather than reuse it."""
    return jax.random.key(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data folder (`PPL_DATA_DIR`, else `<repo>/../shared/data`); skips when absent."""
    path = Path(os.environ.get("PPL_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set PPL_DATA_DIR to the shared data sets)")
    return path
