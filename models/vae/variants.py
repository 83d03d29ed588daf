"""What the VAE family (`models.vae.model`, `models.vae.discrete`, `models.vae.flow`) shares: the
training run and chunked evaluation.

The models' loss functions have one signature, `loss_fn(params, key, x, state) -> (cost, (state,
elbo))` (`state` the REINFORCE baseline state, `()` when there is none), so the training run is
written once: `fit` binarises each batch, trains through `inference.fit` (one compiled scan per
epoch, checkpoints and resume) and tracks a test ELBO per epoch; `evaluate_in_chunks` computes the
test ELBO and the importance-sampled log-likelihood in padded chunks.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference

__all__ = ["VariantFit", "evaluate_in_chunks", "fit"]

LossFn = Callable[[dict, jax.Array, jax.Array, Any], tuple[jax.Array, tuple[Any, jax.Array]]]


class VariantFit(NamedTuple):
    """What `fit` returns: final `params`, estimator `state`, per-epoch `train_elbo` and `test_elbo`
    `[n_epochs]` (nats per digit; `test_elbo` None without test digits, NaN for epochs run before a
    resume), the training `seconds`, and the driver's `inference.TrainResult` (`train`)."""

    params: dict
    state: Any
    train_elbo: np.ndarray
    test_elbo: np.ndarray | None
    seconds: float
    train: Any = None


def fit(key: jax.Array, loss_fn: LossFn, params: dict, state, x_train, x_test, *, n_epochs: int,
        optimizer: optax.GradientTransformation, test_elbo_fn: Callable[[dict, jax.Array, Any], float],
        batch_size: int = 128, is_binarized: bool = False, progress_bar: bool = True,
        checkpoint_dir=None, checkpoint_every: int = 1, resume=False) -> VariantFit:
    """Trains a VAE through `inference.fit`, binarising each batch, with a test ELBO per epoch.

    Args:
      key: a JAX PRNG key.
      loss_fn: `loss_fn(params, key, x, state) -> (cost, (state, elbo))`, `elbo` the batch's mean
        ELBO (nats), on a binary batch `x` `[batch_size, x_dim]`.
      params: the initial parameters; `state`: the estimator's initial state (`()` for none).
      x_train: `[n_train, x_dim]` pixel intensities (binarised per batch unless `is_binarized`);
        x_test: binary `[n_test, x_dim]` or None.
      n_epochs: passes over the data (>= 1).
      optimizer: an optax transformation.
      test_elbo_fn: `(params, key, x_test) -> float`, run on the host after every epoch.
      batch_size: digits per step (the ragged last batch waits for a later epoch).
      progress_bar: the driver's bar with the running cost and ELBO.
      checkpoint_dir, checkpoint_every, resume: as in `inference.fit`.

    Raises:
      ValueError: `n_epochs < 1`, or what `inference.fit` raises.
    """
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be positive, got {n_epochs}")
    key_train, key_test = jax.random.split(key)

    def loss(params, key, x, state):
        key_binarize, key_loss = jax.random.split(key)
        if not is_binarized:
            x = jax.random.bernoulli(key_binarize, x).astype(x.dtype)
        cost, (state, elbo) = loss_fn(params, key_loss, x, state)
        return cost, (state, {"elbo": elbo})

    test_elbo = {}

    def callback(epoch, params, state, record):
        if x_test is not None:
            test_elbo[epoch] = test_elbo_fn(params, jax.random.fold_in(key_test, epoch), x_test)

    result = inference.fit(key_train, loss, params, optimizer, jnp.asarray(x_train, jnp.float32),
                           n_epochs=n_epochs, batch_size=batch_size, state=state, callback_fn=callback,
                           progress_bar=progress_bar, checkpoint_dir=checkpoint_dir,
                           checkpoint_every=checkpoint_every, resume=resume)
    train_elbo = np.asarray(result.history["elbo"])
    tested = None if x_test is None else np.asarray([test_elbo.get(e + 1, np.nan)
                                                     for e in range(len(train_elbo))])
    seconds = float(np.sum(result.history["seconds"]))
    return VariantFit(result.params, result.state, train_elbo, tested, seconds, result)


def evaluate_in_chunks(chunks_fn, params: dict, key: jax.Array, x, x_dim: int, n_importance: int,
                       batch_size: int) -> dict:
    """Test ELBO and importance-sampled log-likelihood from a jitted per-chunk evaluator.

    Args:
      chunks_fn: `(params, key, chunks [n_chunks, batch, x_dim], n_importance) -> (elbo, log_lik)`,
        each `[n_chunks, batch]` (nats per digit), jitted with `n_importance` static.
      params: the model's parameters.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`; the last chunk is zero-padded and the padding dropped.
      x_dim: the expected width of `x`.
      n_importance, batch_size: samples per digit and digits per chunk.

    Returns:
      `{"test_elbo": float, "test_log_likelihood": float}`, means over the n digits.

    Raises:
      ValueError: `x` is not `[n, x_dim]` with n >= 1, or a non-positive size.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != x_dim:
        raise ValueError(f"evaluate: x must be [n, {x_dim}] with n >= 1, got shape {x.shape}")
    if n_importance < 1 or batch_size < 1:
        raise ValueError(f"n_importance and batch_size must be positive, got {n_importance}, {batch_size}")
    n = x.shape[0]
    batch_size = min(batch_size, n)
    n_chunks = math.ceil(n / batch_size)
    padded = np.concatenate([x, np.zeros((n_chunks * batch_size - n, x_dim), x.dtype)])
    lower, log_lik = chunks_fn(params, key, padded.reshape(n_chunks, batch_size, x_dim), n_importance)
    return {"test_elbo": float(np.mean(np.asarray(lower).reshape(-1)[:n])),
            "test_log_likelihood": float(np.mean(np.asarray(log_lik).reshape(-1)[:n]))}


