"""Stochastic gradient Hamiltonian Monte Carlo (SGHMC)."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from inference.sgmcmc.base import SGMCMC, check_latent, check_learning_rate
from inference.sgmcmc.gradients import learning_rate_at, normal_like

__all__ = ["MomentumSGMCMC", "SGHMC", "SGHMCInfo", "SGHMCState", "check_resample_interval",
           "maybe_resample_momentum"]


class SGHMCState(NamedTuple):
    """SGHMC's state.

    Attributes:
      position: `{name: array}`, the current sample.
      momentum: `{name: array}` like `position`, the velocity `v` (position units per step).
      count: steps taken, int32 of shape `[]`.
    """

    position: dict
    momentum: dict
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count (as in optax states)


class SGHMCInfo(NamedTuple):
    """SGHMC's diagnostics.

    Attributes:
      mean_k: `{name: array []}`, ZhuSuan's `mean_k`: the mean of the squared updated momentum
        `v ** 2` over each latent's entries. At equilibrium it is close to `learning_rate`.
      learning_rate: the rate used in the step, shape `[]`.
    """

    mean_k: dict
    learning_rate: jax.Array
    is_rejected: jax.Array | bool = False   # a non-finite gradient: the step was not taken


def check_resample_interval(n_iter_resample_v: int | None) -> int:
    """`n_iter_resample_v` as an int >= 0 (None -> 0: never resample after the first step).

    Raises:
      ValueError: a negative or non-integer value.
    """
    n = 0 if n_iter_resample_v is None else n_iter_resample_v
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n_iter_resample_v must be None or an int >= 0, got {n_iter_resample_v!r}")
    return n


def maybe_resample_momentum(key: jax.Array, momentum: dict, count: jax.Array, learning_rate: jax.Array,
                            n_iter_resample_v: int) -> dict:
    """The momentum this step starts from: resampled from `N(0, learning_rate)` at step 0 and
    every `n_iter_resample_v` steps (when it is positive), otherwise `momentum` unchanged.

    ZhuSuan draws the first momentum when the sampler is created and resamples when
    `count % n_iter_resample_v == 0` (so also at step 0); drawing at step 0 here keeps `init` free
    of randomness and gives the same distribution.

    Args:
      key: a JAX PRNG key.
      momentum: `{name: array}`.
      count: steps taken, int of shape `[]`.
      learning_rate: shape `[]`; the momentum's variance.
      n_iter_resample_v: the resampling interval (0: only at step 0).

    Returns:
      `{name: array}` like `momentum`.
    """
    resample = count == 0
    if n_iter_resample_v > 0:
        resample = resample | (count % n_iter_resample_v == 0)
    # a real branch for one chain (no draw on most steps); under vmap over chains it becomes a select
    return jax.lax.cond(resample, lambda: normal_like(key, momentum, jnp.sqrt(learning_rate)),
                        lambda: momentum)


class MomentumSGMCMC(SGMCMC):
    """What SGHMC and SGNHT share: the learning rate at this step, momentum resampling every
    `n_iter_resample_v` steps, and the half-step-ahead gradient position of the second-order
    integrator. Subclasses set `learning_rate`, `n_iter_resample_v` and `second_order`."""

    def _prepare(self, key, state):
        lr = learning_rate_at(self.learning_rate, state.count)
        key_momentum, key_noise = jax.random.split(key)
        momentum = maybe_resample_momentum(key_momentum, state.momentum, state.count, lr,
                                           self.n_iter_resample_v)
        return lr, momentum, key_noise

    def _position_for_gradient(self, state, prepared):
        """`position + momentum / 2` for the second-order integrator, else `position`."""
        if not self.second_order:
            return state.position
        return jax.tree.map(lambda z, v: z + 0.5 * v, state.position, prepared[1])


class SGHMC(MomentumSGMCMC):
    """Stochastic gradient HMC (Chen, Fox and Guestrin, 2014), as in ZhuSuan's `SGHMC`.

    Equation (15) of the paper, in the velocity form :math:`v = \\epsilon M^{-1} r`, with learning
    rate :math:`\\eta = \\epsilon^2 M^{-1}`, friction :math:`\\alpha = \\epsilon M^{-1} C`,
    gradient-noise estimate :math:`\\hat\\beta` and log-joint gradient :math:`g(z)`; first order:

    .. math::
      v_{t+1} = (1 - \\alpha) v_t + \\eta\\, g(z_t) + \\xi_t, \\qquad z_{t+1} = z_t + v_{t+1},
      \\qquad \\xi_t \\sim N(0, 2 (\\alpha - \\hat\\beta) \\eta I).

    Second order (`second_order=True`, the symmetric splitting of Chen, Ding and Carin, 2015):

    .. math::
      z' = z_t + v_t / 2,\\quad
      v_{t+1} = e^{-\\alpha/2} \\big(e^{-\\alpha/2} v_t + \\eta\\, g(z') + \\xi_t\\big),\\quad
      z_{t+1} = z' + v_{t+1} / 2.

    The stationary distribution is the posterior in `z` times :math:`N(0, \\eta I)` in `v`, up to
    an :math:`O(\\eta)` discretisation error. `learning_rate` does not scale like `SGLD`'s: it is
    :math:`\\eta = O(\\epsilon^2)` for a step size :math:`\\epsilon`. The momentum is drawn from
    :math:`N(0, \\eta I)` at the first step and every `n_iter_resample_v` steps.

    Args:
      learning_rate: :math:`\\eta > 0`, a float or an optax schedule `count -> rate`.
      friction: :math:`\\alpha`, decay of the momentum per step (larger: closer to the posterior
        under noisy gradients, slower mixing).
      variance_estimate: :math:`\\hat\\beta \\in [0, \\alpha]`, an estimate of the gradient-noise
        term (0 when unknown).
      n_iter_resample_v: resample the momentum every this many steps; None or 0: never (after
        the first step).
      second_order: use the second-order integrator.

    Raises:
      ValueError: `friction < variance_estimate`, a negative `variance_estimate`, a bad
        `n_iter_resample_v` or `learning_rate`.

    References:
      Chen, Fox and Guestrin, `Stochastic Gradient Hamiltonian Monte Carlo
      <https://arxiv.org/abs/1402.4102>`_, 2014.
      Chen, Ding and Carin, `On the Convergence of Stochastic Gradient MCMC Algorithms with
      High-Order Integrators <https://arxiv.org/abs/1610.06665>`_, 2015.
    """

    def __init__(self, learning_rate: float | Callable[[jax.Array], jax.Array], friction: float = 0.25,
                 variance_estimate: float = 0.0, n_iter_resample_v: int | None = 20,
                 second_order: bool = True):
        self.learning_rate = check_learning_rate(learning_rate)
        if not 0.0 <= variance_estimate <= friction:
            raise ValueError(f"SGHMC needs 0 <= variance_estimate <= friction, got variance_estimate="
                             f"{variance_estimate!r}, friction={friction!r}")
        self.friction = float(friction)
        self.variance_estimate = float(variance_estimate)
        self.n_iter_resample_v = check_resample_interval(n_iter_resample_v)
        self.second_order = bool(second_order)

    def init(self, latent: Mapping[str, Any]) -> SGHMCState:
        """The state at `latent`; the momentum (zero here) is drawn at the first step. See `SGLD.init`."""
        position = check_latent(latent)
        return SGHMCState(position, jax.tree.map(jnp.zeros_like, position), jnp.zeros((), jnp.int32))

    def _update(self, prepared, state, grads):
        lr, v, key_noise = prepared
        noise = normal_like(key_noise, v, jnp.sqrt(2.0 * (self.friction - self.variance_estimate) * lr))
        if self.second_order:
            decay_half = math.exp(-0.5 * self.friction)
            half = jax.tree.map(lambda z, m: z + 0.5 * m, state.position, v)
            v = jax.tree.map(lambda m, g, n: decay_half * (decay_half * m + lr * g + n), v, grads, noise)
            position = jax.tree.map(lambda z, m: z + 0.5 * m, half, v)
        else:
            v = jax.tree.map(lambda m, g, n: (1.0 - self.friction) * m + lr * g + n, v, grads, noise)
            position = jax.tree.map(lambda z, m: z + m, state.position, v)
        v = jax.tree.map(lambda m, z: m.astype(z.dtype), v, state.position)
        position = jax.tree.map(lambda new, z: new.astype(z.dtype), position, state.position)
        info = SGHMCInfo(jax.tree.map(lambda m: jnp.mean(m * m), v), lr)
        return SGHMCState(position, v, state.count + 1), info
