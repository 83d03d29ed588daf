"""Normalizing flows as pure functions over `(samples, log_q)` with explicit parameter pytrees.

A flow maps samples `z ~ q` through an invertible function `f` and returns `(f(z), log q(z) -
log |det df/dz|)`, the samples and log-density of the refined posterior (ZhuSuan's `transform`).
Feed the result to any objective as `latent={name: (samples, log_q)}`. Parameters are NamedTuples
with a leading `[n_layers]` axis; layers are applied with `lax.scan`. Every flow has an `init_*`
function (key first) that returns its parameters.

Shapes: `samples` is `[*batch, dim]` (the last axis is the event), `log_q` is `[*batch]`.

ZhuSuan's names are here too: `planar_normalizing_flow(samples, log_probs, n_iters, params=...)`
and `inv_autoregressive_flow(samples, hidden, log_probs, autoregressive_nn, n_iters, update)`, with
the parameters explicit (JAX has no variable store for a flow to create its own).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["PlanarParams", "IAFParams", "init_planar", "planar", "init_iaf", "iaf", "made_masks",
           "made_autoregressive_nn", "planar_normalizing_flow", "inv_autoregressive_flow"]

_Params = TypeVar("_Params")
# ZhuSuan's `autoregressive_nn(name, id, z, hidden) -> (m, s)`, each `[*batch, dim]`.
AutoregressiveNN = Callable[[str, int, jax.Array, "jax.Array | None"], tuple[jax.Array, jax.Array]]


class PlanarParams(NamedTuple):
    """Planar flow parameters for `n_layers` layers.

    Attributes:
      u: shape `[n_layers, dim]`, the direction of the update (made invertible inside `planar`).
      w: shape `[n_layers, dim]`, the projection.
      b: shape `[n_layers]`, the bias.
    """

    u: jax.Array
    w: jax.Array
    b: jax.Array


def _check(name, samples, log_q, dim):
    if jnp.ndim(samples) < 1 or samples.shape[-1] != dim:
        raise ValueError(f"{name}: samples must have shape [*batch, {dim}] to match the parameters, got "
                         f"{jnp.shape(samples)}")
    try:
        jnp.broadcast_shapes(jnp.shape(log_q), samples.shape[:-1])
    except ValueError:
        raise ValueError(f"{name}: log_q of shape {jnp.shape(log_q)} does not broadcast with the samples' "
                         f"batch shape {samples.shape[:-1]}") from None


def init_planar(key: jax.Array, dim: int, n_layers: int, scale: float = 0.01) -> PlanarParams:
    """Small random planar-flow parameters (near the identity map).

    Args:
      key: a JAX PRNG key.
      dim: the event size of the samples.
      n_layers: how many planar layers.
      scale: the standard deviation of the initial `u` and `w`.

    Returns:
      `PlanarParams` with shapes `[n_layers, dim]`, `[n_layers, dim]`, `[n_layers]`.
    """
    key_u, key_w = jax.random.split(key)
    return PlanarParams(scale * jax.random.normal(key_u, (n_layers, dim)),
                        scale * jax.random.normal(key_w, (n_layers, dim)), jnp.zeros((n_layers,)))


def planar(params: PlanarParams, samples: jax.Array, log_q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Planar flow `f(z) = z + u' tanh(w^T z + b)`, layer after layer.

    `u' = u + (softplus(w . u) - 1 - w . u) w / |w|^2` guarantees `w . u' >= -1`, so every layer is
    invertible and `log |det| = log |1 + u' . w (1 - tanh^2(w . z + b))|`.

    Args:
      params: `PlanarParams` (leading axis `[n_layers]`).
      samples: `z`, shape `[*batch, dim]`.
      log_q: log q(z), shape `[*batch]` (or broadcastable to it).

    Returns:
      `(f(z), log_q - sum of log |det|)`, shapes `[*batch, dim]` and `[*batch]`.

    Raises:
      ValueError: samples whose last axis is not `dim`, or `log_q` that does not match the batch.

    References:
      Rezende and Mohamed, `Variational Inference with Normalizing Flows
      <https://arxiv.org/abs/1505.05770>`_, 2015.
    """
    _check("planar", samples, log_q, params.u.shape[-1])
    log_q = jnp.broadcast_to(log_q, samples.shape[:-1])

    def layer(carry, p):
        z, lq = carry
        u, w, b = p
        wu = jnp.dot(w, u)
        u_hat = u + (jax.nn.softplus(wu) - 1.0 - wu) * w / (jnp.dot(w, w) + 1e-12)
        h = jnp.tanh(z @ w + b)                                         # [*batch]
        z = z + h[..., None] * u_hat
        log_det = jnp.log(jnp.abs(1.0 + (1.0 - h**2) * jnp.dot(u_hat, w)))
        return (z, lq - log_det), None

    (samples, log_q), _ = jax.lax.scan(layer, (samples, log_q), params)
    return samples, log_q


class IAFParams(NamedTuple):
    """Inverse autoregressive flow parameters for `n_layers` steps of a one-hidden-layer MADE.

    Attributes:
      w_in: `[n_layers, dim, hidden]` input-to-hidden weights (masked).
      b_in: `[n_layers, hidden]`.
      w_context: `[n_layers, context_dim, hidden]` weights of the optional context `h` (unmasked;
        `context_dim` may be 0).
      w_mean, w_scale: `[n_layers, hidden, dim]` hidden-to-output weights (masked).
      b_mean, b_scale: `[n_layers, dim]`; `b_scale` starts positive so each step starts near identity.
    """

    w_in: jax.Array
    b_in: jax.Array
    w_context: jax.Array
    w_mean: jax.Array
    b_mean: jax.Array
    w_scale: jax.Array
    b_scale: jax.Array


def made_masks(dim: int, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """MADE masks for one hidden layer: output `i` depends only on inputs `j < i` (0-based order).

    Returns:
      `(mask_in [dim, hidden], mask_out [hidden, dim])` of 0/1 floats.

    References:
      Germain, Gregor, Murray and Larochelle, `MADE: Masked Autoencoder for Distribution Estimation
      <https://arxiv.org/abs/1502.03509>`_, 2015.
    """
    degree_in = np.arange(1, dim + 1)
    degree_hidden = np.arange(hidden) % max(dim - 1, 1) + 1
    mask_in = (degree_in[:, None] <= degree_hidden[None, :]).astype(np.float32)
    mask_out = (degree_hidden[:, None] < degree_in[None, :]).astype(np.float32)
    return mask_in, mask_out


def init_iaf(key: jax.Array, dim: int, n_layers: int, hidden: int, context_dim: int = 0,
             forget_bias: float = 1.0) -> IAFParams:
    """Random IAF parameters (Glorot-scaled weights, zero mean biases, `forget_bias` on the gates).

    Args:
      key: a JAX PRNG key.
      dim: the event size of the samples.
      n_layers: how many IAF steps.
      hidden: the width of each MADE's hidden layer.
      context_dim: the size of the optional context vector `h` (0: none).
      forget_bias: initial `b_scale`; sigmoid(1) = 0.73 keeps steps close to the identity.

    Returns:
      `IAFParams` with the shapes listed there.
    """
    keys = jax.random.split(key, 4)

    def glorot(k, shape):
        return jax.random.normal(k, shape) * np.sqrt(2.0 / (shape[-2] + shape[-1] + 1e-9))

    return IAFParams(
        w_in=glorot(keys[0], (n_layers, dim, hidden)), b_in=jnp.zeros((n_layers, hidden)),
        w_context=glorot(keys[1], (n_layers, context_dim, hidden)),
        w_mean=glorot(keys[2], (n_layers, hidden, dim)), b_mean=jnp.zeros((n_layers, dim)),
        w_scale=glorot(keys[3], (n_layers, hidden, dim)), b_scale=jnp.full((n_layers, dim), forget_bias))


def iaf(params: IAFParams, samples: jax.Array, log_q: jax.Array,
        context: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Inverse autoregressive flow: `z <- sigma * z + (1 - sigma) * m`, `(m, s) = MADE(z, h)`.

    `sigma = sigmoid(s)`; since `m_i, s_i` depend only on `z_{<i}`, the Jacobian is triangular and
    `log |det| = sum_i log sigma_i`. The order of the variables is reversed after every step.

    Args:
      params: `IAFParams` (leading axis `[n_layers]`).
      samples: `z`, shape `[*batch, dim]`.
      log_q: log q(z), shape `[*batch]` (or broadcastable to it).
      context: optional `h` from the encoder, shape broadcastable to `[*batch, context_dim]`.

    Returns:
      `(f(z), log_q - sum of log |det|)`, shapes `[*batch, dim]` and `[*batch]`.

    Raises:
      ValueError: samples whose last axis is not `dim`; `log_q` that does not match the batch; a
        `context` whose last axis is not `context_dim` (or a missing one when `context_dim > 0`).

    References:
      Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling, `Improving Variational Inference
      with Inverse Autoregressive Flow <https://arxiv.org/abs/1606.04934>`_, 2016.
    """
    dim, hidden = params.w_in.shape[-2:]
    context_dim = params.w_context.shape[-2]
    _check("iaf", samples, log_q, dim)
    if (context is None) != (context_dim == 0) or (context is not None and context.shape[-1] != context_dim):
        raise ValueError(f"iaf: the parameters take a context of size {context_dim}, got "
                         f"{None if context is None else jnp.shape(context)}")
    log_q = jnp.broadcast_to(log_q, samples.shape[:-1])
    masks = tuple(jnp.asarray(m) for m in made_masks(dim, hidden))

    def step(carry, p):
        z, lq = carry
        mean, gate = _made(p, z, context, masks)
        z, lq = _gru_update(z, lq, mean, gate)
        return (jnp.flip(z, -1), lq), None

    (samples, log_q), _ = jax.lax.scan(step, (samples, log_q), params)
    n_layers = params.w_in.shape[0]
    return (jnp.flip(samples, -1) if n_layers % 2 else samples), log_q


def _made(p: IAFParams, z: jax.Array, context: jax.Array | None, masks) -> tuple[jax.Array, jax.Array]:
    """One MADE layer (parameters of one step): `(mean, gate)`, each `[*batch, dim]`."""
    mask_in, mask_out = masks
    pre = z @ (p.w_in * mask_in) + p.b_in
    if context is not None:
        pre = pre + context @ p.w_context
    act = jax.nn.elu(pre)
    return act @ (p.w_mean * mask_out) + p.b_mean, act @ (p.w_scale * mask_out) + p.b_scale


def _gru_update(z, log_q, mean, gate):
    """`z <- sigmoid(gate) z + (1 - sigmoid(gate)) mean`, with its log-determinant."""
    z = jax.nn.sigmoid(gate) * z + jax.nn.sigmoid(-gate) * mean
    return z, log_q - jnp.sum(jax.nn.log_sigmoid(gate), -1)


def _normal_update(z, log_q, mean, scale):
    """`z <- scale z + mean` (scale > 0), with its log-determinant."""
    return scale * z + mean, log_q - jnp.sum(jnp.log(scale), -1)


def made_autoregressive_nn(params: IAFParams) -> AutoregressiveNN:
    """The MADE of `params` as ZhuSuan's `autoregressive_nn(name, id, z, hidden) -> (m, s)`.

    Layer `id` of `params` maps `z` (and the context `hidden`, or None) to the mean `m` and the
    gate `s` (before the sigmoid), for `inv_autoregressive_flow(..., update="gru")`; with
    `n_iters = n_layers` that equals `iaf(params, ...)` up to the final order of the variables (see
    `inv_autoregressive_flow`).

    Args:
      params: `IAFParams` with a leading `[n_layers]` axis.

    Returns:
      A function `(name, id, z, hidden) -> (m, s)`, each `[*batch, dim]`.
    """
    dim, hidden_size = params.w_in.shape[-2:]
    masks = tuple(jnp.asarray(m) for m in made_masks(dim, hidden_size))

    def autoregressive_nn(name: str, index: int | jax.Array, z: jax.Array, hidden: jax.Array | None
                          ) -> tuple[jax.Array, jax.Array]:
        del name
        layer = jax.tree_util.tree_map(lambda a: a[index], params)
        return _made(layer, z, hidden, masks)

    return autoregressive_nn


def planar_normalizing_flow(samples: jax.Array, log_probs: jax.Array, n_iters: int | None = None, *,
                            params: PlanarParams | None = None) -> tuple[jax.Array, jax.Array]:
    """ZhuSuan's `zs.planar_normalizing_flow(samples, log_probs, n_iters)`: see `planar`.

    ZhuSuan created the flow's variables inside the call; here they are explicit: make them with
    `init_planar(key, dim, n_layers=n_iters)` and pass them as `params`.

    Args:
      samples: `[*batch, dim]`.
      log_probs: log q(samples), `[*batch]`.
      n_iters: the number of planar layers; if given, it must match `params`.
      params: `PlanarParams` (required).

    Returns:
      `(samples, log_probs)` after the flow, as `planar` returns them.

    Raises:
      TypeError: `params` missing.
      ValueError: `n_iters` that does not match `params`, or see `planar`.
    """
    checked = _check_params("planar_normalizing_flow", params, n_iters, "init_planar(key, dim, n_layers)")
    return planar(checked, samples, log_probs)


def inv_autoregressive_flow(samples: jax.Array, hidden: jax.Array | None, log_probs: jax.Array,
                            autoregressive_nn: AutoregressiveNN, n_iters: int, update: str = "normal"
                            ) -> tuple[jax.Array, jax.Array]:
    """ZhuSuan's `zs.inv_autoregressive_flow`: `n_iters` autoregressive steps, reversing the order.

    Step `t` computes `(m, s) = autoregressive_nn("iaf", t, z, hidden)` and updates
    `z <- s z + m` (`update="normal"`, `s > 0`) or `z <- sigmoid(s) z + (1 - sigmoid(s)) m`
    (`update="gru"`), subtracting the log-determinant from `log_probs`; then it reverses the last
    axis. As in ZhuSuan the result is left in the order of the last step (`iaf` restores the
    original order). `autoregressive_nn` holds its parameters itself (a closure), e.g.
    `made_autoregressive_nn(params)`; output `i` must depend only on inputs before `i`.

    Args:
      samples: `[*batch, dim]`.
      hidden: the context passed to `autoregressive_nn` (or None).
      log_probs: log q(samples), `[*batch]`.
      autoregressive_nn: `(name, id, z, hidden) -> (m, s)`, each `[*batch, dim]`.
      n_iters: the number of steps.
      update: "normal" or "gru".

    Returns:
      `(samples, log_probs)` after the flow, shapes `[*batch, dim]` and `[*batch]`.

    Raises:
      ValueError: an unknown `update`, `n_iters < 1`, or samples and log-probabilities whose
        shapes do not match.

    References:
      Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling, `Improving Variational Inference
      with Inverse Autoregressive Flow <https://arxiv.org/abs/1606.04934>`_, 2016.
    """
    if update not in ("normal", "gru"):
        raise ValueError(f"inv_autoregressive_flow: update must be 'normal' or 'gru', got {update!r}")
    if not isinstance(n_iters, int) or n_iters < 1:
        raise ValueError(f"inv_autoregressive_flow: n_iters must be a positive int, got {n_iters!r}")
    _check("inv_autoregressive_flow", samples, log_probs, jnp.shape(samples)[-1])
    step = _gru_update if update == "gru" else _normal_update
    z, log_q = samples, jnp.broadcast_to(log_probs, samples.shape[:-1])
    for index in range(n_iters):
        mean, scale = autoregressive_nn("iaf", index, z, hidden)
        z, log_q = step(z, log_q, mean, scale)
        z = jnp.flip(z, -1)
    return z, log_q


def _check_params(name: str, params: _Params | None, n_iters: int | None, how: str) -> _Params:
    if params is None:
        raise TypeError(f"{name}: give the flow's parameters as params= (JAX has no variable store "
                        f"for the flow to create them): make them with {how}")
    n_layers = jax.tree_util.tree_leaves(params)[0].shape[0]
    if n_iters is not None and n_iters != n_layers:
        raise ValueError(f"{name}: n_iters={n_iters}, but params hold {n_layers} layers")
    return params
