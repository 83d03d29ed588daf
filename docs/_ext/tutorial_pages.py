"""Copies the tutorial notebooks into `docs/tutorials/` and writes their index page.

The notebooks live in `notebooks/` (built from `notebooks/src/` and stored without outputs, see
`notebooks/build.py`); Sphinx reads only files under `docs/`, so they are copied at build time. The
docs build renders them as stored and never executes them: `tests/notebooks` runs every one.
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
(a `SCALE` variable at the top makes the runs longer). They are stored without outputs, so these
pages show the code and the text; run a notebook (`jupyter lab notebooks/`) to see its numbers and
plots. The test suite executes every notebook.

| tutorial | file |
|---|---|
{rows}

```{{toctree}}
:hidden:
:titlesonly:
{toc}
```
""")
