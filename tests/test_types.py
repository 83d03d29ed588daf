"""The public API is typed: mypy checks `ppl/` and `inference/` with no errors.

The configuration (`[tool.mypy]` in pyproject.toml) lists the files and the untyped dependencies
whose imports are not followed; both packages ship a `py.typed` marker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ppl

ROOT = Path(__file__).resolve().parents[1]


def test_packages_are_marked_typed():
    for package in ("ppl", "inference"):
        assert (ROOT / package / "py.typed").is_file(), f"{package}/py.typed is missing"


@pytest.mark.slow
def test_mypy_finds_no_errors(tmp_path):
    checked = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                             cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert checked.returncode == 0, f"mypy found errors:\n{checked.stdout[-8000:]}\n{checked.stderr[-2000:]}"
    assert "no issues found" in checked.stdout


def test_node_helper_types_match_the_generated_helpers():
    from ppl._node_helpers import NodeHelpers
    from ppl.nodes import NODE_TABLE, ZHUSUAN_ALIASES

    assert set(NodeHelpers.__annotations__) == set(NODE_TABLE) | set(ZHUSUAN_ALIASES)
    for name in NodeHelpers.__annotations__:
        assert callable(getattr(ppl.BayesianNet, name)), name
