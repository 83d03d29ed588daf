"""What every model's command line shares: the common flags, output files and progress bars.

Flags (shared/DESIGN.md): `--data-dir DIR` (default `$PPL_DATA_DIR`), `--dataset NAME`,
`--out DIR`, `--overwrite`, `--seed S`, `--epochs N`, `--splits K`, `--method NAME`. A model adds
the ones that apply with `add_common_arguments(parser, ...)`. This module holds no data and no
model: data loaders live in `models.data`, and nothing below the command line imports it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from models._progress import progress

__all__ = [
    "MNIST_DATASETS",
    "add_checkpoint_arguments",
    "add_common_arguments",
    "checkpoint_options",
    "add_mnist_arguments",
    "add_output_arguments",
    "atomic_write_text",
    "data_dir_from",
    "output_dir",
    "positive_int",
    "prepare_output",
    "reject_unused_flags",
    "progress",
    "split_summary",
    "write_metrics",
]


MNIST_DATASETS = ("mnist_5k", "mnist", "binarized_mnist")  # = models.data.mnist.DATASETS (tested)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts such as `--epochs`, `--splits`, `--chains`).

    Raises:
      argparse.ArgumentTypeError: not an integer, or below 1 (argparse turns it into a usage error).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, *, name: str, epochs: int | None = None,
                         dataset: str | None = None, datasets: Sequence[str] | None = None,
                         method: str | None = None, methods: Sequence[str] | None = None,
                         splits: int | None = None, data_dir: bool = True) -> None:
    """Adds `--out`, `--overwrite`, `--seed`, `--data-dir` and, where a default is given, the others.

    Args:
      parser: the model's sub-parser.
      name: the model's name; `--out` defaults to `out/NAME`.
      epochs, dataset, method, splits: defaults for `--epochs`, `--dataset`, `--method`,
        `--splits`; a flag is added only when its default is given (`--epochs` and `--splits`
        must be >= 1, checked when the flags are parsed).
      datasets, methods: the allowed choices, if restricted.
      data_dir: whether the command reads a data directory; a command that does not has no
        `--data-dir` flag, so passing one is a usage error rather than silently ignored.

    Example:
      >>> parser = argparse.ArgumentParser()
      >>> add_common_arguments(parser, name="blr", epochs=10, data_dir=False)
    """
    if data_dir:
        parser.add_argument("--data-dir", default=os.environ.get("PPL_DATA_DIR"),
                            help="directory of the standard data sets (default: $PPL_DATA_DIR; unset: "
                                 "the real data packaged with pip)")
    add_output_arguments(parser, name)
    parser.add_argument("--seed", type=int, default=0, help="the random seed (a JAX key)")
    if epochs is not None:
        parser.add_argument("--epochs", type=positive_int, default=epochs,
                            help="passes over the training data")
    if dataset is not None:
        parser.add_argument("--dataset", default=dataset, choices=datasets, help="which data set")
    if method is not None:
        parser.add_argument("--method", default=method, choices=methods, help="inference algorithm")
    if splits is not None:
        parser.add_argument("--splits", type=positive_int, default=splits,
                            help="how many published splits to run")


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Adds `--out DIR` (default `out/NAME`) and `--overwrite` (see `prepare_output`)."""
    parser.add_argument("--out", default=f"out/{name}", help="where metrics.json and the plots go; an "
                        "existing directory that holds files is refused unless --overwrite is given")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing, non-empty --out, replacing files of the same names")


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `--checkpoint-every N` and `--resume` for a command that trains through `inference.fit`.

    Checkpoints go to `--out/checkpoints/` (see `checkpoint_options`): an interrupted run (Ctrl-C
    included) keeps its last checkpoint, and the same command with `--resume` continues from it
    and ends with the parameters an uninterrupted run would have.
    """
    parser.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                        help="save a checkpoint to --out/checkpoints every N epochs (and after the last)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out/checkpoints (a fresh start "
                             "when there is none); an existing --out is then expected")


def checkpoint_options(args: argparse.Namespace, out: Path, subdir: str | None = None) -> dict[str, Any]:
    """`inference.fit`'s `checkpoint_dir`, `checkpoint_every` and `resume` from the flags of
    `add_checkpoint_arguments` (no checkpoints when neither flag is given).

    `subdir` names one fit's own directory under `--out/checkpoints` when a command runs several
    (e.g. `split_3` of a UCI benchmark): a resumed command skips the fits already finished.
    """
    every, resume = getattr(args, "checkpoint_every", None), getattr(args, "resume", False)
    if every is None and not resume:
        return {}
    directory = Path(out) / "checkpoints"
    directory = directory if subdir is None else directory / subdir
    return {"checkpoint_dir": directory, "checkpoint_every": every or 1, "resume": resume}


def add_mnist_arguments(parser: argparse.ArgumentParser, default_epochs: dict[str, int]) -> None:
    """Adds the flags the MNIST models share: `--dataset`, `--epochs`, `--n-train`, `--n-test`, `--quiet`.

    `--n-train N` / `--n-test N` select digits by `models.data.mnist.subset` (N evenly spaced
    digits), the one subset rule of every MNIST command.
    """
    parser.add_argument("--dataset", choices=MNIST_DATASETS, default=None,
                        help="default: binarized_mnist when --data-dir / PPL_DATA_DIR is set, else the "
                             "packaged mnist_5k (dynamically binarised)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help=f"passes over the data ({default_epochs})")
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="use N evenly spaced training digits")
    parser.add_argument("--n-test", type=positive_int, default=None,
                        help="evaluate N evenly spaced test digits")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def reject_unused_flags(given: set[str], method: str, flags_by_method: dict[str, Sequence[str]],
                        method_flag: str = "--method") -> None:
    """Refuses flags that `method` does not use, rather than ignoring them in silence.

    Args:
      given: the dests of the flags written on the command line (`python -m models` computes it).
      method: the chosen method.
      flags_by_method: flag dest -> the methods that read it.
      method_flag: how to name the method's flag in the message.

    Raises:
      ValueError: a given flag that `method` does not use, named with the methods that do.
    """
    for dest, methods in flags_by_method.items():
        if dest in given and method not in methods:
            flag = "--" + dest.replace("_", "-")
            raise ValueError(f"{flag} is not used by {method_flag} {method} (only by {', '.join(methods)})")


def data_dir_from(args: argparse.Namespace) -> Path | None:
    """The data directory from `--data-dir` / `PPL_DATA_DIR`, or None for the packaged data.

    Raises:
      FileNotFoundError: the directory was given but does not exist.
    """
    if not getattr(args, "data_dir", None):
        return None
    path = Path(args.data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"--data-dir {str(path)!r} is not a directory")
    return path


def prepare_output(args: argparse.Namespace) -> Path:
    """Creates `--out` and checks it is writable, before any computation; returns its path.

    The policy (documented in the README): a missing `--out` is created; an existing empty
    directory is used; an existing directory that holds files (a previous run's) is refused unless
    `--overwrite` (or `--resume`, which continues a run in it) is given, in which case this run's
    files replace those of the same names. Every
    file is written under a temporary name and renamed when complete, so an interrupted run never
    leaves a half-written `metrics.json`. Called by `python -m models` right after parsing; calling
    it again for the same `args` returns the path.

    Raises:
      FileExistsError: `--out` is a file, or a non-empty directory without `--overwrite`.
      PermissionError: `--out` cannot be written.
    """
    path = Path(args.out)
    if getattr(args, "_out_prepared", False):
        return path
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {str(path)!r} exists and is not a directory")
    reuse = getattr(args, "overwrite", False) or getattr(args, "resume", False)
    if path.is_dir() and any(path.iterdir()) and not reuse:
        raise FileExistsError(f"--out {str(path)!r} already holds files (a previous run?); pass "
                              "--overwrite to replace them, or choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (FileExistsError, NotADirectoryError) as error:
        raise FileExistsError(f"--out {str(path)!r} cannot be created: {error}") from None
    except PermissionError as error:
        raise PermissionError(f"--out {str(path)!r} is not writable: {error}") from None
    args._out_prepared = True
    return path


def output_dir(args: argparse.Namespace) -> Path:
    """`--out`, prepared by `prepare_output` (a no-op when `python -m models` already did)."""
    return prepare_output(args)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` to `path` through a temporary file in the same directory and a rename.

    A reader (or an interrupted run) sees the old file or the complete new one, never a part.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
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
    """Writes `metrics` as `out/metrics.json` atomically (arrays become lists, non-finite floats null)."""
    text = json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n"
    return atomic_write_text(Path(out) / "metrics.json", text)


def split_summary(values: Sequence[float]) -> dict[str, Any]:
    """`{"mean", "stderr", "per_split"}` over splits (stderr = sample std / sqrt(n); 0 for n = 1)."""
    values = [float(v) for v in values]
    n = len(values)
    stderr = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return {"mean": float(np.mean(values)), "stderr": stderr, "per_split": values}
