"""MNIST loaders: the packaged 5000 digits, the IDX parser, binarized MNIST, and their errors."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from models.data import mnist

DATA_DIR = Path(os.environ.get("PPL_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")


def _write_idx(path: Path, array: np.ndarray, magic_code: int = 0x08) -> None:
    header = bytes([0, 0, magic_code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _write_tiny_mnist(folder: Path, n_train: int = 3, n_test: int = 2) -> dict:
    rng = np.random.default_rng(0)
    (folder / "mnist").mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(folder / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(folder / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[prefix] = (images, labels)
    return arrays


def test_packaged_subset_is_a_stratified_split_of_the_5000_digits():
    data = mnist.load_mnist_5k()
    assert data.name == "mnist_5k"
    assert data.x_train.shape == (4000, 784) and data.x_test.shape == (1000, 784)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(data.y_test, minlength=10), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(data.y_train, minlength=10), np.full(10, 400))
    # the two parts together are exactly the packaged file (nothing lost or duplicated)
    table = np.loadtxt(mnist.mnist_5k_path(), delimiter=",", dtype=np.int64)
    both = np.concatenate([data.x_train, data.x_test]) * 255
    np.testing.assert_allclose(np.sort(both.sum(1)), np.sort(table[:, :784].sum(1)), rtol=1e-5)
    # deterministic: the same split every time
    np.testing.assert_array_equal(mnist.load_mnist_5k().x_test, data.x_test)


def test_load_dataset_mnist_5k_ignores_the_data_dir(tmp_path):
    assert mnist.load_dataset("mnist_5k", tmp_path).x_test.shape == (1000, 784)
    with pytest.raises(ValueError, match="multiple of 10"):
        mnist.load_mnist_5k(n_test=15)


def test_idx_parser_reads_a_tiny_mnist_directory(tmp_path):
    arrays = _write_tiny_mnist(tmp_path)
    data = mnist.load_mnist(tmp_path)
    assert data.x_train.shape == (3, 784) and data.x_test.shape == (2, 784)
    assert data.x_train.dtype == np.float32 and data.y_test.dtype == np.int32
    np.testing.assert_allclose(data.x_train, arrays["train"][0].reshape(3, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, arrays["t10k"][1])
    raw = tmp_path / "raw-idx"  # an uncompressed file of another type code
    array = np.arange(6, dtype=">i4").reshape(2, 3)
    raw.write_bytes(bytes([0, 0, 0x0C, 2]) + np.asarray([2, 3], ">i4").tobytes() + array.tobytes())
    np.testing.assert_array_equal(mnist.read_idx(raw), array)


def test_missing_files_and_directories_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        mnist.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="binarized_mnist.npz"):
        mnist.load_binarized_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mnist.load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs --data-dir"):
        mnist.load_dataset("binarized_mnist", None)
    with pytest.raises(ValueError, match="unknown MNIST data set"):
        mnist.load_dataset("cifar10", tmp_path)


def test_malformed_idx_files_are_rejected(tmp_path):
    _write_tiny_mnist(tmp_path)
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    _write_idx(images, np.zeros((3, 28, 28)), magic_code=0x09)  # magic 2307, not 2051
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*magic number 2307"):
        mnist.load_mnist(tmp_path)
    images.write_bytes(gzip.compress(b"\x01\x02\x08\x03" + bytes(100)))
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.read_idx(images)
    _write_idx(images, np.zeros((3, 28, 28)))
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-5]))  # truncated data
    with pytest.raises(ValueError, match=r"header says shape \(3, 28, 28\)"):
        mnist.load_mnist(tmp_path)
    _write_idx(images, np.zeros((4, 28, 28)))  # 4 images for 3 labels
    with pytest.raises(ValueError, match="3,\\) labels for 4 images"):
        mnist.load_mnist(tmp_path)


def test_binarized_npz(tmp_path):
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"train": 5, "valid": 3, "test": 2}
    parts = {k: rng.integers(0, 2, (n, 784), dtype=np.uint8) for k, n in sizes.items()}
    np.savez(folder / "binarized_mnist.npz", **parts)
    data = mnist.load_dataset("binarized_mnist", tmp_path)
    assert data.x_train.shape == (8, 784) and data.x_test.shape == (2, 784) and data.y_train is None
    assert data.x_train.dtype == np.float32
    np.testing.assert_array_equal(data.x_train, np.concatenate([parts["train"], parts["valid"]]))
    assert mnist.load_binarized_mnist(tmp_path, include_valid=False).x_train.shape == (5, 784)
    np.savez(folder / "binarized_mnist.npz", **{**parts, "train": parts["train"] * 2})
    with pytest.raises(ValueError, match="values must be 0 or 1"):
        mnist.load_binarized_mnist(tmp_path)
    np.savez(folder / "binarized_mnist.npz", train=parts["train"], test=parts["test"])
    with pytest.raises(ValueError, match="no array 'valid'"):
        mnist.load_binarized_mnist(tmp_path)


@pytest.mark.skipif(not (DATA_DIR / "mnist").is_dir(), reason=f"full MNIST not found in {DATA_DIR}")
def test_real_full_mnist_headers_and_shapes():
    data = mnist.load_mnist(DATA_DIR)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.y_train.shape == (60000,) and set(np.unique(data.y_test)) == set(range(10))
    assert 0.0 <= data.x_test.min() and data.x_test.max() == 1.0


@pytest.mark.skipif(not (DATA_DIR / "binarized_mnist").is_dir(),
                    reason=f"binarized MNIST not found in {DATA_DIR}")
def test_real_binarized_mnist_shapes():
    data = mnist.load_binarized_mnist(DATA_DIR)
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert set(np.unique(data.x_test)) == {0.0, 1.0}
