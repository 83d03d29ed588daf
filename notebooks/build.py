"""Builds the tutorial notebooks (`notebooks/*.ipynb`, stored without outputs) from `notebooks/src/*.py`.

A source file is plain Python in the "percent" format: `# %%` starts a code cell, `# %% [markdown]`
a markdown cell whose lines are `# `-prefixed. Run `python notebooks/build.py` after editing a source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def cells_from_source(text: str) -> list:
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif kind == "code" and body:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = cells_from_source(source.read_text())
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    target = HERE / f"{source.stem}.ipynb"
    nbformat.write(notebook, target)
    return target


if __name__ == "__main__":
    sources = [Path(p) for p in sys.argv[1:]] or sorted((HERE / "src").glob("*.py"))
    for source in sources:
        print("wrote", build(source))
