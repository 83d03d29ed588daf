"""The UCI loader: the published layout, the packaged Boston housing default, standardisation."""

import os
from pathlib import Path

import numpy as np
import pytest

from models.data import uci

DATA_DIR = Path(os.environ.get("PPL_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
HAS_REAL = (DATA_DIR / "uci" / "bostonHousing" / "data.txt").is_file()


def _write_folder(root: Path, name="yacht", n=10, n_splits=2):
    folder = root / "uci" / uci.UCI_DATASETS[name]
    folder.mkdir(parents=True)
    table = np.arange(n * 4, dtype=float).reshape(n, 4) ** 1.5
    np.savetxt(folder / "data.txt", table)
    np.savetxt(folder / "index_features.txt", [0, 1, 2], fmt="%d")
    np.savetxt(folder / "index_target.txt", [3], fmt="%d")
    for k in range(n_splits):
        perm = np.random.default_rng(k).permutation(n)
        np.savetxt(folder / f"index_train_{k}.txt", perm[:8], fmt="%d")
        np.savetxt(folder / f"index_test_{k}.txt", perm[8:], fmt="%d")
    np.savetxt(folder / "n_splits.txt", [n_splits], fmt="%d")
    return folder, table


def test_synthetic_folder(tmp_path):
    folder, table = _write_folder(tmp_path)
    assert uci.n_splits("yacht", tmp_path) == 2
    split = uci.load_uci("yacht", tmp_path, split=1)
    perm = np.random.default_rng(1).permutation(10)
    np.testing.assert_array_equal(split.x_train, table[perm[:8], :3])
    np.testing.assert_array_equal(split.y_test, table[perm[8:], 3])
    assert (split.n_hidden, split.n_epochs, split.split) == (50, 40, 1)  # defaults without the files
    # the folder itself may also be given (data_dir/<folder>)
    np.testing.assert_array_equal(uci.load_uci("yacht", tmp_path / "uci", split=1).x_test, split.x_test)


def test_standardize_uses_training_statistics(tmp_path):
    _write_folder(tmp_path)
    split = uci.load_uci("yacht", tmp_path, split=0)
    split = split._replace(x_train=np.concatenate([split.x_train[:, :2], np.ones((8, 1))], 1),
                           x_test=np.concatenate([split.x_test[:, :2], np.ones((2, 1))], 1))
    data = uci.standardize(split)
    np.testing.assert_allclose(data.x_train[:, :2].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(data.x_train[:, :2].std(0), 1, rtol=1e-12)
    np.testing.assert_array_equal(data.x_train[:, 2], 0)  # constant column: std set to 1, no NaN
    np.testing.assert_allclose(data.unstandardize_y(data.y_test), split.y_test, rtol=1e-12)
    assert data.y_mean == pytest.approx(split.y_train.mean())


def test_errors(tmp_path):
    folder, _ = _write_folder(tmp_path)
    with pytest.raises(ValueError, match="unknown UCI data set 'nope'"):
        uci.load_uci("nope", tmp_path)
    with pytest.raises(ValueError, match=r"split must be an int in \[0, 2\)"):
        uci.load_uci("yacht", tmp_path, split=2)
    with pytest.raises(FileNotFoundError, match="concrete"):
        uci.load_uci("concrete", tmp_path)
    with pytest.raises(ValueError, match="needs a data directory"):
        uci.load_uci("yacht")
    (folder / "index_test_1.txt").unlink()
    with pytest.raises(FileNotFoundError, match="index_test_1.txt"):
        uci.load_uci("yacht", tmp_path, split=1)
    np.savetxt(folder / "index_train_0.txt", [0, 99], fmt="%d")
    with pytest.raises(ValueError, match="index_train"):
        uci.load_uci("yacht", tmp_path, split=0)


def test_packaged_boston_protocol():
    split = uci.load_uci("boston", split=0)
    assert split.x_train.shape == (455, 13) and split.x_test.shape == (51, 13)
    assert uci.n_splits("boston") == 20
    # the splits are disjoint and cover the 506 rows
    table = uci.packaged_boston()
    rows = np.concatenate([split.y_train, split.y_test])
    np.testing.assert_allclose(np.sort(rows), np.sort(table[:, -1]))


@pytest.mark.skipif(not HAS_REAL, reason=f"the UCI data are not at {DATA_DIR} (set PPL_DATA_DIR)")
def test_real_data_and_packaged_boston_agree():
    sizes = {"boston": (455, 13), "yacht": (277, 6), "protein": (41157, 9)}
    for name, shape in sizes.items():
        split = uci.load_uci(name, DATA_DIR, split=0)
        assert split.x_train.shape == shape
    assert uci.n_splits("protein", DATA_DIR) == 5 and uci.load_uci("protein", DATA_DIR).n_hidden == 100
    # the packaged Boston data with the published generator reproduces the published splits
    for k in (0, 19):
        real, packaged = uci.load_uci("boston", DATA_DIR, split=k), uci.load_uci("boston", split=k)
        np.testing.assert_array_equal(real.x_train, packaged.x_train)
        np.testing.assert_array_equal(real.y_test, packaged.y_test)
