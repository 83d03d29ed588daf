"""Copies the tutorial notebooks into `docs/tutorials/` and writes their index page.

The notebooks live in `notebooks/` (built from `notebooks/src/` by `notebooks/build.py`, then
executed and stored with their outputs by `python -m docs.execute_notebooks`); Sphinx reads only
files under `docs/`, so they are copied at build time. The docs build renders them as stored and
never executes them: `tests/notebooks` runs every one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

__all__ = ["write"]


def _title(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def write(source: Path, target: Path) -> None:
    """Copies `source/*.ipynb` to `target/` and writes `target/index.md` listing them."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.ipynb"):
        old.unlink()
    notebooks = sorted(source.glob("*.ipynb"))
    for path in notebooks:
        shutil.copyfile(path, target / path.name)
    rows = "\n".join(f"| [{_title(p)}]({p.stem}) | `notebooks/{p.name}` |" for p in notebooks)
    toc = "\n".join(p.stem for p in notebooks)
    (target / "index.md").write_text(f"""# Tutorials

Each tutorial is a notebook in `notebooks/` that runs top to bottom on a CPU in a couple of minutes
(a `SCALE` variable at the top makes the runs longer). These pages show each notebook with the
outputs of its last stored run (`python -m docs.execute_notebooks`, see
[Building these pages](../contributing.md)); the test suite executes every notebook afresh.

| tutorial | file |
|---|---|
{rows}

```{{toctree}}
:hidden:
:titlesonly:
{toc}
```
""")
