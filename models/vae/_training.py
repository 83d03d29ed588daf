"""What the MNIST models share: a command's data and keys, and dynamic binarisation for `inference.fit`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from models.data import mnist

__all__ = ["PreparedRun", "binarizing_loss", "check_training_set", "prepare_run"]


class PreparedRun(NamedTuple):
    """The digits and keys of a command's run (see `prepare_run`): `keys` holds independent keys
    "fit", "eval" and "plot"."""

    dataset: str
    epochs: int
    x_train: np.ndarray
    x_test: np.ndarray
    is_binarized: bool
    keys: dict


def prepare_run(*, seed: int, data_dir: str | Path | None, dataset: str | None, n_epochs: int | None,
                default_epochs: dict[str, int], n_train: int | None = None, n_test: int | None = None,
                dataset_with_data_dir: str = "binarized_mnist") -> PreparedRun:
    """Loads an MNIST command's digits by the one subset rule (`mnist.prepare`) and splits its keys.

    Args:
      seed: the run's seed; the keys "fit", "eval", "plot" and the test binarisation's come from it.
      data_dir: the data directory, or None for the packaged mnist_5k.
      dataset: the data set, or None for `dataset_with_data_dir` with a data directory, else mnist_5k.
      n_epochs: passes over the data, or None for `default_epochs[dataset]`.
      default_epochs: data set -> default number of epochs.
      n_train, n_test: digits kept (`mnist.subset`; None: all).
      dataset_with_data_dir: the default data set when a data directory is given.

    Returns:
      A `PreparedRun`; grey-level test digits are binarised once with the run's key.

    Raises:
      ValueError, FileNotFoundError: see `mnist.prepare`.
    """
    dataset = dataset or (dataset_with_data_dir if data_dir is not None else "mnist_5k")
    n_epochs = n_epochs if n_epochs is not None else default_epochs[dataset]
    key_fit, key_test, key_eval, key_plot = jax.random.split(jax.random.key(seed), 4)
    data = mnist.prepare(dataset, data_dir, n_train=n_train, n_test=n_test, key=key_test,
                         binarize_fn=lambda key, x: jax.random.bernoulli(key, x).astype(jnp.float32))
    return PreparedRun(dataset, n_epochs, data.x_train, data.x_test, data.is_binarized,
                       {"fit": key_fit, "eval": key_eval, "plot": key_plot})


def check_training_set(x_train, batch_size: int) -> jax.Array:
    """`x_train` as a float32 `[n_train, x_dim]` array with at least one batch of `batch_size` rows.

    Raises:
      ValueError: `x_train` is not 2-D, or has fewer than `batch_size` rows.
    """
    x_train = jnp.asarray(x_train, jnp.float32)
    if x_train.ndim != 2 or x_train.shape[0] < batch_size:
        raise ValueError(f"x_train must be [n_train, x_dim] with n_train >= batch_size={batch_size}, "
                         f"got shape {x_train.shape}")
    return x_train


def binarizing_loss(cost_fn: Callable[[dict, jax.Array, jax.Array], jax.Array], is_binarized: bool):
    """An `inference.fit` loss from `cost_fn(params, key, x) -> scalar cost`.

    Each batch of pixel intensities `x` `[batch, x_dim]` is binarised with Bernoulli draws (unless
    `is_binarized`) before the cost; the loss has no state and no metrics besides the cost.
    """
    def loss(params, key, x, state):
        key_binarize, key_cost = jax.random.split(key)
        if not is_binarized:
            x = jax.random.bernoulli(key_binarize, x).astype(x.dtype)
        return cost_fn(params, key_cost, x), (state, None)

    return loss
