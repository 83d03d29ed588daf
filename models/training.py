"""The minibatch training loop the MNIST models share: one jitted, scanned pass over the data."""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import cli

__all__ = ["check_training_set", "make_binarized_epoch", "run_epochs"]


def check_training_set(x_train, batch_size: int) -> jax.Array:
    """`x_train` as a float32 `[n_train, x_dim]` array with at least one batch of `batch_size` rows.

    Raises:
      ValueError: `x_train` is not 2-D or has fewer than `batch_size` rows.
    """
    x_train = jnp.asarray(x_train, jnp.float32)
    if x_train.ndim != 2 or x_train.shape[0] < batch_size:
        raise ValueError(f"x_train must be [n_train, x_dim] with n_train >= batch_size={batch_size}, "
                         f"got shape {x_train.shape}")
    return x_train


def run_epochs(epoch, params, opt_state, key: jax.Array, x_train: jax.Array, epochs: int, *,
               desc: str, show_progress: bool = True, sign: float = 1.0, postfix: str | None = None):
    """Runs `epochs` passes of a compiled `epoch` (from `make_binarized_epoch`) under a progress bar.

    Returns `(params, opt_state, values, seconds)`: `values` `[epochs]` is `sign` times each epoch's mean
    loss (e.g. `sign=-1` turns a negative bound back into the bound), `seconds` the wall time. When
    `postfix` is given the bar shows the latest value under that name.
    """
    values, start = [], time.perf_counter()
    bar = cli.progress(range(epochs), desc=desc, unit="epoch", disable=not show_progress)
    keys = jax.random.split(key, epochs)
    for e in bar:
        params, opt_state, losses = epoch(params, opt_state, keys[e], x_train)
        values.append(sign * float(np.mean(np.asarray(losses))))
        if postfix and hasattr(bar, "set_postfix"):
            bar.set_postfix({postfix: f"{values[-1]:.2f}"})
    return params, opt_state, np.asarray(values), time.perf_counter() - start


def make_binarized_epoch(loss_fn: Callable[[dict, jax.Array, jax.Array], jax.Array],
                         optimizer: optax.GradientTransformation, batch_size: int,
                         is_binarized: bool = True):
    """A jitted pass over the data: `epoch(params, opt_state, key, x_train) -> (params, opt_state, losses)`.

    Permutes `x_train` `[n_train, x_dim]`, drops the ragged last batch, binarises each batch with
    Bernoulli draws of its pixel intensities (unless `is_binarized`) and `lax.scan`s an optimizer
    step on `loss_fn(params, key, x)` (a scalar cost) over the `n_train // batch_size` batches.
    `losses` has shape `[n_train // batch_size]`. Compiled once per training-set shape.
    """
    def step(carry, inputs):
        params, opt_state = carry
        key, x = inputs
        key_binarize, key_loss = jax.random.split(key)
        if not is_binarized:
            x = jax.random.bernoulli(key_binarize, x).astype(x.dtype)
        loss, grads = jax.value_and_grad(loss_fn)(params, key_loss, x)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def epoch(params, opt_state, key, x_train):
        n_batches = x_train.shape[0] // batch_size
        key_order, key_steps = jax.random.split(key)
        order = jax.random.permutation(key_order, x_train.shape[0])[: n_batches * batch_size]
        batches = x_train[order].reshape(n_batches, batch_size, -1)
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state),
                                                   (jax.random.split(key_steps, n_batches), batches))
        return params, opt_state, losses

    return epoch
