"""scikit-learn's breast cancer set (Wisconsin diagnostic, 569 x 30), the data of `models.blr`.

References:
  Street, Wolberg and Mangasarian, `Nuclear feature extraction for breast tumor diagnosis
  <https://doi.org/10.1117/12.148698>`_, 1993.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_breast_cancer"]


def load_breast_cancer(seed: int = 0, test_fraction: float = 0.2):
    """scikit-learn's breast cancer set (569 x 30), standardised with training statistics, plus an
    intercept column; a random `test_fraction` held out.

    Returns:
      `(x_train [n, 31], y_train [n], x_test [m, 31], y_test [m])`, float32.

    Raises:
      ImportError: scikit-learn is not installed.
    """
    from sklearn.datasets import load_breast_cancer as sklearn_load

    data = sklearn_load()
    x, y = data.data.astype(np.float64), data.target.astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / std
    x = np.concatenate([x, np.ones((len(y), 1))], axis=1).astype(np.float32)
    return x[train], y[train], x[test], y[test]
