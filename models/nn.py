"""Small multi-layer perceptrons for the model zoo: parameters are plain pytrees of `jnp` arrays.

An MLP's parameters are a list of `{"w": [d_in, d_out], "b": [d_out]}` dicts, one per layer, so
they go straight into `jax.grad`, optax and `jax.tree_util` with no framework in between.

Example:
  >>> params = init_mlp(jax.random.key(0), [784, 500, 500, 80])
  >>> mlp(params, jnp.zeros([128, 784])).shape
  (128, 80)

References:
  Glorot and Bengio, `Understanding the difficulty of training deep feedforward neural networks
  <https://proceedings.mlr.press/v9/glorot10a.html>`_, 2010.
  He, Zhang, Ren and Sun, `Delving Deep into Rectifiers
  <https://arxiv.org/abs/1502.01852>`_, 2015.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

__all__ = ["dense_init", "init_mlp", "mlp"]

_SCALES = {
    "glorot": lambda d_in, d_out: 2.0 / (d_in + d_out),  # variance of Glorot (Xavier) normal
    "he": lambda d_in, d_out: 2.0 / d_in,  # variance of He (Kaiming) normal, for ReLU layers
}


def dense_init(key: jax.Array, d_in: int, d_out: int, init: str = "he") -> dict[str, jax.Array]:
    """One dense layer: normal weights of variance 2 / d_in ("he") or 2 / (d_in + d_out) ("glorot").

    Args:
      key: a JAX PRNG key.
      d_in, d_out: input and output widths.
      init: "he" (for layers followed by a ReLU) or "glorot".

    Returns:
      `{"w": float32 [d_in, d_out], "b": float32 zeros [d_out]}`.

    Raises:
      ValueError: an unknown `init`, or a non-positive width.
    """
    if init not in _SCALES:
        raise ValueError(f"init must be one of {sorted(_SCALES)}, got {init!r}")
    if d_in < 1 or d_out < 1:
        raise ValueError(f"layer widths must be positive, got d_in={d_in}, d_out={d_out}")
    std = jnp.sqrt(_SCALES[init](d_in, d_out))
    return {"w": std * jax.random.normal(key, (d_in, d_out), jnp.float32),
            "b": jnp.zeros((d_out,), jnp.float32)}


def init_mlp(key: jax.Array, sizes: Sequence[int], hidden_init: str = "he",
             output_init: str = "glorot") -> list[dict[str, jax.Array]]:
    """Parameters of an MLP with layer widths `sizes` = [d_in, hidden..., d_out].

    Args:
      key: a JAX PRNG key.
      sizes: the widths, at least two.
      hidden_init: initialisation of the hidden layers ("he" suits ReLU).
      output_init: initialisation of the last (linear) layer.

    Returns:
      A list of `len(sizes) - 1` layer dicts (see `dense_init`).

    Raises:
      ValueError: fewer than two sizes, or see `dense_init`.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output width, got sizes={sizes}")
    if min(sizes) < 1:
        raise ValueError(f"layer widths must be positive, got sizes={sizes}")
    inits = [hidden_init] * (len(sizes) - 2) + [output_init]
    for init in inits:
        if init not in _SCALES:
            raise ValueError(f"init must be one of {sorted(_SCALES)}, got {init!r}")
    # One draw for all layers, then sliced: a single random-bits kernel compiles much faster than
    # one per layer under jit.
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    noise = jax.random.normal(key, (sum(d_in * d_out for d_in, d_out in shapes),), jnp.float32)
    params, start = [], 0
    for (d_in, d_out), init in zip(shapes, inits, strict=True):
        std = jnp.sqrt(_SCALES[init](d_in, d_out))
        params.append({"w": std * noise[start: start + d_in * d_out].reshape(d_in, d_out),
                       "b": jnp.zeros((d_out,), jnp.float32)})
        start += d_in * d_out
    return params


def mlp(params: Sequence[dict[str, jax.Array]], x: jax.Array,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.relu) -> jax.Array:
    """Applies an MLP: `activation` after every layer but the last, which is linear.

    Args:
      params: layers from `init_mlp`.
      x: inputs of shape `[*batch, d_in]` (any number of leading axes, e.g. particles).

    Returns:
      Outputs of shape `[*batch, d_out]`.

    Raises:
      ValueError: the last axis of `x` is not the first layer's input width.
    """
    d_in = params[0]["w"].shape[0]
    if x.shape[-1] != d_in:
        raise ValueError(f"mlp input has {x.shape[-1]} features (shape {x.shape}), the first layer "
                         f"expects {d_in}")
    for i, layer in enumerate(params):
        x = x @ layer["w"] + layer["b"].reshape((1,) * (x.ndim - 1) + (-1,))  # explicit rank
        if i < len(params) - 1:
            x = activation(x)
    return x
