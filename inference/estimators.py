"""Gradient estimators for variational objectives, as small pure functions of `(log_joint, log_q)`.

Each function returns a *surrogate cost*: an array whose value is a cost to minimise and whose
gradient (with respect to the model and variational parameters) is the estimator's gradient. The
objectives in `inference.elbo`, `inference.iw_objective` and `inference.klpq` call these; a power
user can call them directly on arrays computed any other way.

Shapes: `log_joint` is log p(x, z) and `log_q` is log q(z), both broadcastable to a common shape
`[*particles_and_batch]`; `axis` names the particle axis (K samples) in that shape. Costs come back
with `axis` reduced, one per data point.

Conventions for gradients to be right:

* score-function estimators (`reinforce`, `vimco`, `importance`) need samples `z` that carry no
  gradient (`is_reparameterized=False` in the DSL, or `jax.lax.stop_gradient` on the samples);
* pathwise estimators (`sgvb`, `iwae`, `dreg`) need reparameterised samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

__all__ = [
    "ReinforceState",
    "ReinforceResult",
    "reinforce_init",
    "sgvb",
    "reinforce",
    "iwae",
    "vimco",
    "dreg",
    "importance",
]

_sg = jax.lax.stop_gradient


def _broadcast(log_joint, log_q):
    shape = jnp.broadcast_shapes(jnp.shape(log_joint), jnp.shape(log_q))
    return jnp.broadcast_to(log_joint, shape), jnp.broadcast_to(log_q, shape)


def _mean(x, axis):
    return x if axis is None else jnp.mean(x, axis=axis)


def _check_axis(name, log_w, axis, min_size=1):
    if axis is None:
        raise ValueError(f"{name} is a multi-sample estimator: `axis` (the particle axis) must be given")
    if not -log_w.ndim <= axis < log_w.ndim:
        raise ValueError(f"{name}: axis={axis} is out of range for log_joint - log_q of shape {log_w.shape}")
    if log_w.shape[axis] < min_size:
        raise ValueError(f"{name} needs at least {min_size} samples along axis={axis}, but log_joint - "
                         f"log_q has shape {log_w.shape}")


def _log_mean_exp(x, axis, keepdims=False):
    return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims) - jnp.log(x.shape[axis])


def sgvb(log_joint: jax.Array, log_q: jax.Array, axis: int | None = None) -> jax.Array:
    """Reparameterised (SGVB) surrogate cost for the ELBO: `-mean_axis(log_joint - log_q)`.

    Args:
      log_joint: log p(x, z), shape `[*particles_and_batch]`, with `z` reparameterised.
      log_q: log q(z), broadcastable to `log_joint`.
      axis: the particle axis to average over, or None.

    Returns:
      The cost per data point (nats), shape of `log_joint - log_q` without `axis`.

    References:
      Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
    """
    log_joint, log_q = _broadcast(log_joint, log_q)
    return -_mean(log_joint - log_q, axis)


class ReinforceState(NamedTuple):
    """The moving average of the REINFORCE learning signal (state in, state out).

    Attributes:
      moving_mean: exponential moving average of the mean learning signal, shape `[]`, not yet
        corrected for its zero initialisation.
      n_updates: how many times `moving_mean` was updated, shape `[]`, int32.
    """

    moving_mean: jax.Array
    n_updates: jax.Array


class ReinforceResult(NamedTuple):
    """What `reinforce` returns, whatever the options.

    Attributes:
      cost: the surrogate cost per data point, shape `[*batch]` (`axis` reduced); minimise it.
      baseline_cost: the squared-error regression cost of the learned baseline per data point,
        `0.5 * (signal - baseline)^2` averaged over `axis`; zeros when no baseline is given.
      state: the updated `ReinforceState`.
    """

    cost: jax.Array
    baseline_cost: jax.Array
    state: ReinforceState


def reinforce_init(dtype: DTypeLike = jnp.float32) -> ReinforceState:
    """The initial `ReinforceState`: a zero moving mean that has not been updated."""
    return ReinforceState(jnp.zeros((), dtype), jnp.zeros((), jnp.int32))


def reinforce(log_joint: jax.Array, log_q: jax.Array, state: ReinforceState, axis: int | None = None,
              variance_reduction: bool = True, baseline: jax.Array | None = None,
              decay: float = 0.8, weights: jax.Array | None = None) -> ReinforceResult:
    """Score-function (REINFORCE / NVIL) surrogate cost for the ELBO, with signal centering.

    The learning signal is `l = log p(x, z) - log q(z)`. The gradient of the cost is

    .. math::
      -\\nabla \\log p(x, z) - (l - b(x) - c)\\, \\nabla \\log q(z),

    an unbiased estimate of the negative ELBO gradient (the term `E_q[∇ log q] = 0` is dropped, as
    in ZhuSuan). With `variance_reduction`, `c` is the bias-corrected exponential moving average of
    the mean signal over the *previous* steps (so the centering is independent of the current
    samples and the estimator stays unbiased), and `b(x)` is the optional learned baseline.

    As in ZhuSuan, `b(x)` regresses the raw signal `l` (hundreds of nats for an MNIST model) and the
    moving average then centres what is left, `l - b(x)`; Mnih & Gregor (2014) instead fit `b(x)` to
    the centred signal `l - c`. The two give the same estimator once `b` has converged, but a
    baseline network that starts near zero must learn a large offset first, so give it its own,
    faster optimiser (e.g. `optax.multi_transform`, Adam 3e-2 against 1e-3 for the nets; see
    `notebooks/03_discrete_latents.ipynb`).

    Args:
      log_joint: log p(x, z), shape `[*particles_and_batch]`; samples `z` must carry no gradient.
      log_q: log q(z), broadcastable to `log_joint`.
      state: the `ReinforceState` from the previous step (`reinforce_init()` at the start).
      axis: the particle axis to average over, or None.
      variance_reduction: whether to centre the signal (moving average and `baseline`).
      baseline: optional per-data-point baseline values `b(x)` from a user network (NVIL), shape
        broadcastable to `log_joint` (typically `[*batch]`). Train the network on
        `result.baseline_cost`.
      decay: the moving-average decay in [0, 1): the weight the old average keeps at each update,
        `new = decay * old + (1 - decay) * mean(signal)`; about the last `1 / (1 - decay)` steps
        count (ZhuSuan's default 0.8, debiased like TensorFlow's `assign_moving_average`).
      weights: optional non-negative weights of the signals in the moving average, broadcastable
        to `log_joint` (e.g. q(y) of the values of an enumerated latent); None: equal weights.

    Returns:
      A `ReinforceResult(cost, baseline_cost, state)`; the state is unchanged when
      `variance_reduction` is False.

    Raises:
      ValueError: `decay` outside [0, 1); `baseline` given with `variance_reduction=False`;
        `baseline` that does not broadcast to `log_joint`.

    References:
      Williams, `Simple statistical gradient-following algorithms for connectionist reinforcement
      learning <https://doi.org/10.1007/BF00992696>`_, 1992.
      Mnih and Gregor, `Neural Variational Inference and Learning in Belief Networks
      <https://arxiv.org/abs/1402.0030>`_, 2014.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"reinforce: decay must lie in [0, 1), got {decay}")
    if baseline is not None and not variance_reduction:
        raise ValueError("reinforce: a `baseline` is only used with variance_reduction=True")
    log_joint, log_q = _broadcast(log_joint, log_q)
    signal = _sg(log_joint - log_q)
    baseline_cost = jnp.zeros(jnp.shape(_mean(signal, axis)), signal.dtype)
    if variance_reduction:
        if baseline is not None:
            try:
                jnp.broadcast_shapes(jnp.shape(baseline), signal.shape)
            except ValueError:
                raise ValueError(f"reinforce: baseline of shape {jnp.shape(baseline)} does not broadcast "
                                 f"to log_joint - log_q of shape {signal.shape}") from None
            baseline_cost = _mean(0.5 * jnp.square(signal - baseline), axis)
            signal = signal - _sg(baseline)
        n = state.n_updates
        correction = 1.0 - jnp.power(decay, n.astype(signal.dtype))
        centre = jnp.where(n > 0, state.moving_mean / jnp.where(n > 0, correction, 1.0), 0.0)
        new_mean = decay * state.moving_mean + (1.0 - decay) * _weighted_mean(signal, weights)
        state = ReinforceState(new_mean.astype(state.moving_mean.dtype), n + 1)
        signal = signal - _sg(centre)
    cost = _mean(-signal * log_q - log_joint, axis)
    return ReinforceResult(cost, baseline_cost, state)


def _weighted_mean(x, weights):
    if weights is None:
        return jnp.mean(x)
    weights = _sg(jnp.broadcast_to(weights, x.shape))
    return jnp.sum(jnp.where(weights > 0, weights * x, 0.0)) / jnp.sum(weights)


def iwae(log_joint: jax.Array, log_q: jax.Array, axis: int) -> jax.Array:
    """Reparameterised surrogate cost for the importance weighted bound: `-log mean_k w_k`.

    Args:
      log_joint: log p(x, z_k), shape `[*particles_and_batch]`, K samples along `axis`.
      log_q: log q(z_k), broadcastable to `log_joint`.
      axis: the axis of the K samples.

    Returns:
      The cost per data point (nats), `axis` reduced.

    References:
      Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
      <https://arxiv.org/abs/1509.00519>`_, 2015.
    """
    log_joint, log_q = _broadcast(log_joint, log_q)
    _check_axis("iwae", log_joint, axis)
    return -_log_mean_exp(log_joint - log_q, axis)


def vimco(log_joint: jax.Array, log_q: jax.Array, axis: int) -> jax.Array:
    """VIMCO surrogate cost: the multi-sample score-function estimator with leave-one-out baselines.

    Each sample's learning signal `L - L_{-k}` compares the bound `L = log mean_j w_j` with the
    bound in which `log w_k` is replaced by the mean of the other `log w_j` (a geometric mean).

    Args:
      log_joint: log p(x, z_k), shape `[*particles_and_batch]`, K >= 2 samples along `axis`;
        samples must carry no gradient.
      log_q: log q(z_k), broadcastable to `log_joint`.
      axis: the axis of the K samples.

    Returns:
      The cost per data point, `axis` reduced; its value is `-L`.

    Raises:
      ValueError: `axis` is None or out of range, or fewer than 2 samples along it.

    References:
      Mnih and Rezende, `Variational inference for Monte Carlo objectives
      <https://arxiv.org/abs/1602.06725>`_, 2016.
    """
    log_joint, log_q = _broadcast(log_joint, log_q)
    log_w = log_joint - log_q
    _check_axis("vimco", log_w, axis, min_size=2)
    axis = axis % log_w.ndim
    k = log_w.shape[axis]
    lw = _sg(jnp.moveaxis(log_w, axis, -1))                          # [..., K]
    mean_others = (jnp.sum(lw, -1, keepdims=True) - lw) / (k - 1)    # [..., K]
    eye = jnp.eye(k, dtype=bool)
    replaced = jnp.where(eye, mean_others[..., :, None], lw[..., None, :])  # [..., K (k), K (j)]
    loo_bound = _log_mean_exp(replaced, -1)                           # L_{-k}: [..., K]
    signal = _log_mean_exp(lw, -1, keepdims=True) - loo_bound          # [..., K]
    score = jnp.sum(jnp.moveaxis(log_q, axis, -1) * signal, -1)
    return -(score - _sg(score)) - _log_mean_exp(log_w, axis)


def dreg(log_joint: jax.Array, log_q: jax.Array, axis: int, log_joint_model: jax.Array) -> jax.Array:
    """Doubly reparameterised (DReG) surrogate cost for the importance weighted bound.

    Variational parameters get `sum_k w~_k^2 d(log w_k)/dz_k dz_k/dphi` (no score term, lower
    variance than IWAE, and a signal that does not vanish as K grows); model parameters get the
    ordinary IWAE gradient `sum_k w~_k grad log p(x, z_k)`. The value is `-log mean_k w_k`.

    Args:
      log_joint: log p(x, z_k), shape `[*particles_and_batch]`, reparameterised samples.
      log_q: log q(z_k) evaluated with the variational parameters *stopped* (gradients reach it
        only through the samples), broadcastable to `log_joint`.
      axis: the axis of the K samples.
      log_joint_model: log p(x, stop_gradient(z_k)), the same values as `log_joint` with the samples
        stopped, so that its gradient reaches only the model parameters.

    Returns:
      The cost per data point, `axis` reduced.

    References:
      Tucker, Lawson, Gu and Maddison, `Doubly Reparameterized Gradient Estimators for Monte Carlo
      Objectives <https://arxiv.org/abs/1810.04152>`_, 2019.
    """
    log_joint, log_q = _broadcast(log_joint, log_q)
    log_w = log_joint - log_q
    _check_axis("dreg", log_w, axis)
    log_joint_model = jnp.broadcast_to(log_joint_model, log_w.shape)
    w_tilde = jax.nn.softmax(_sg(log_w), axis=axis)
    # log_w - log_joint_model has zero gradient for the model parameters (same z values); its
    # gradient for the variational parameters is the pathwise one, weighted by w~^2.
    path = jnp.sum(jnp.square(w_tilde) * (log_w - log_joint_model), axis)
    model = jnp.sum(w_tilde * log_joint_model, axis)
    value = _log_mean_exp(log_w, axis)
    surrogate = path + model
    return -(_sg(value) + surrogate - _sg(surrogate))


def importance(log_joint: jax.Array, log_q: jax.Array, axis: int | None) -> jax.Array:
    """Self-normalised importance-sampling cost for the inclusive KL(p || q) (RWS wake-phase q update).

    The gradient for the variational parameters is `-sum_k w~_k grad log q(z_k)` with
    `w~_k = w_k / sum_j w_j`, a consistent (biased for finite K) estimate of `grad KL(p || q)`.
    No gradient reaches the model.

    Args:
      log_joint: log p(x, z_k), shape `[*particles_and_batch]`; samples must carry no gradient.
      log_q: log q(z_k), broadcastable to `log_joint`.
      axis: the axis of the K samples; None means a single sample (w~ = 1, badly biased).

    Returns:
      The cost per data point, `axis` reduced; its value is `-sum_k w~_k log q(z_k)` (not a bound).

    References:
      Bornschein and Bengio, `Reweighted Wake-Sleep <https://arxiv.org/abs/1406.2751>`_, 2015.
    """
    log_joint, log_q = _broadcast(log_joint, log_q)
    if axis is None:
        return -log_q
    log_w = _sg(log_joint - log_q)
    _check_axis("importance", log_w, axis)
    return -jnp.sum(jax.nn.softmax(log_w, axis=axis) * log_q, axis)
