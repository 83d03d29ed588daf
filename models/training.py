"""The minibatch training loop the MNIST models share: one jitted, scanned pass over the data."""

from __future__ import annotations

from typing import Callable

import jax
import optax

__all__ = ["make_binarized_epoch"]


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
