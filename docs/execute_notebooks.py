"""Executes the tutorial notebooks and stores them WITH their outputs, for the docs site to render.

    python -m docs.execute_notebooks                      # every notebooks/*.ipynb, in place
    python -m docs.execute_notebooks 01_concepts 05_bnn   # some of them (stem, file name or path)
    python -m docs.execute_notebooks --out-dir /tmp/nb 01_concepts   # write copies elsewhere

The docs build never executes anything (`nb_execution_mode = "off"` in `docs/conf.py`): the site
shows the outputs stored in `notebooks/*.ipynb`, so run this after changing a notebook (after
`python notebooks/build.py`, which writes them without outputs) and commit the result. It takes
several minutes on a CPU. The notebook test (`tests/notebooks`) executes the same notebooks from
their source with the same settings, `execute_notebook` below: outputs stored in the files are
cleared before each run, so they neither help nor hide a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

__all__ = ["ROOT", "NOTEBOOKS", "execute_notebook", "clear_outputs", "main"]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TIMEOUT_S = 600   # per cell


def clear_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Empties every code cell's outputs and execution count, in place.

    Args:
      notebook: an nbformat v4 notebook.

    Returns:
      The same `notebook` object (markdown cells untouched), ready to be executed afresh.
    """
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def execute_notebook(path: Path, workdir: Path) -> tuple[nbformat.NotebookNode, list[dict]]:
    """Runs the notebook at `path` from a clean state with nbclient; returns it with its outputs.

    The kernel runs in `workdir` (files a notebook writes land there) with this checkout first on
    `PYTHONPATH`, so it imports the `ppl`, `inference` and `models` next to this file, and with
    `OPENBLAS_NUM_THREADS=1` unless set (see `tests/conftest.py`).

    Args:
      path: a `.ipynb` file.
      workdir: an existing directory, the kernel's working directory.

    Returns:
      `(notebook, errors)`: the executed notebook, and the error outputs of its cells (empty when
      every cell ran; execution stops at the first error).

    Raises:
      nbclient.exceptions.CellTimeoutError / DeadKernelError: a cell ran past `TIMEOUT_S` seconds,
        or the kernel died.
    """
    notebook = clear_outputs(nbformat.read(path, as_version=4))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(env=env)
    except CellExecutionError as error:   # a timeout or a dead kernel propagates
        errors = [output for cell in notebook.cells if cell.cell_type == "code"
                  for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        return notebook, errors or [{"ename": error.ename, "evalue": error.evalue}]
    return notebook, []


def _resolve(name: str) -> Path:
    path = Path(name)
    if path.suffix != ".ipynb":
        path = NOTEBOOKS / f"{name}.ipynb"
    elif not path.exists():
        path = NOTEBOOKS / path.name
    if not path.is_file():
        available = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
        raise SystemExit(f"no notebook {name!r}; the notebooks are: {available}")
    return path


def main(argv: list[str] | None = None) -> int:
    """The command line: executes the named notebooks (default all) and writes them with outputs.

    Args:
      argv: the arguments without the program name (None: `sys.argv[1:]`).

    Returns:
      0 when every notebook ran; 1 when any raised (that notebook is reported and not written).
    """
    parser = argparse.ArgumentParser(prog="python -m docs.execute_notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebooks to run (default: every notebooks/*.ipynb)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="write the executed notebooks here instead of over the originals")
    args = parser.parse_args(argv)
    paths = [_resolve(name) for name in args.names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    failed = []
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        with tempfile.TemporaryDirectory() as workdir:
            notebook, errors = execute_notebook(path, Path(workdir))
        if errors:  # nothing is written for a notebook that fails: its stored version stays as it was
            failed.append(path.name)
            print(f"  {path.name} raised {errors[0]['ename']}: {errors[0]['evalue']}", file=sys.stderr)
            continue
        target = (args.out_dir or path.parent) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        print(f"  wrote {target}", flush=True)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
