"""Shared pytest fixtures for the whole suite.

Nothing here changes global JAX configuration: float64 and rank-promotion checks are switched on
only inside the tests that need them (`with jax.enable_x64(True):`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

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
