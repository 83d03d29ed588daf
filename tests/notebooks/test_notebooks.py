"""Executes every tutorial notebook top to bottom with nbclient; any error fails the test.

Each notebook runs fresh from its source, with its default (small) settings: the outputs stored in
the file (for the docs site, written by `python -m docs.execute_notebooks`) are cleared first. The
runner is `docs.execute_notebooks.execute_notebook`, the one that writes those stored outputs.
"""

import os
from pathlib import Path

import nbformat
import pytest

from docs.execute_notebooks import NOTEBOOKS as NOTEBOOK_DIR
from docs.execute_notebooks import execute_notebook

LEVEL_0_FLAG = "--xla_backend_optimization_level=0"  # set by tests/conftest.py

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


def test_notebooks_are_stored_with_their_outputs():
    # The docs site renders the stored outputs (it executes nothing); a code cell without any
    # (execution_count None) was not run: `python -m docs.execute_notebooks NAME` stores them.
    unexecuted = {}
    for path in NOTEBOOKS:
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        missing = [i for i, cell in enumerate(cells) if cell.get("execution_count") is None]
        if missing:
            unexecuted[path.stem] = f"{len(missing)} of {len(cells)} code cells"
    assert not unexecuted, (f"notebooks stored without outputs: {unexecuted}; run "
                            f"`python -m docs.execute_notebooks {' '.join(unexecuted)}` and commit them")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The notebooks train for real (REINFORCE, the VAEs): their kernels compile with XLA's default
    # optimisation, not the level 0 that tests/conftest.py sets for the suite's small programs
    # (at level 0, notebooks 02 and 03 took twice as long: 137 and 152 s against 70 and 63 s).
    flags = os.environ.get("XLA_FLAGS", "").replace(LEVEL_0_FLAG, "").strip()
    monkeypatch.setenv("XLA_FLAGS", flags)
    notebook, errors = execute_notebook(path, tmp_path)
    assert not errors, f"{path.name} raised: {errors[0]['ename']}: {errors[0]['evalue']}"
    assert all(cell.execution_count is not None for cell in notebook.cells if cell.cell_type == "code")
