"""Stochastic gradient Langevin dynamics (SGLD)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from inference.sgmcmc.base import SGMCMC, check_latent, check_learning_rate
from inference.sgmcmc.gradients import learning_rate_at, normal_like

__all__ = ["SGLD", "SGLDInfo", "SGLDState"]


class SGLDState(NamedTuple):
    """SGLD's state.

    Attributes:
      position: `{name: array}`, the current sample (same shapes as the latents).
      count: steps taken, int32 of shape `[]`.
    """

    position: dict
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count (as in optax states)


class SGLDInfo(NamedTuple):
    """SGLD's diagnostics: the `learning_rate` used in the step, shape `[]`."""

    learning_rate: jax.Array
    is_rejected: jax.Array | bool = False   # a non-finite gradient: the step was not taken


class SGLD(SGMCMC):
    """Stochastic gradient Langevin dynamics (Welling and Teh, 2011), as in ZhuSuan's `SGLD`.

    Equation (3) of the paper, with learning rate :math:`\\eta_t` and a (minibatch) log-joint
    gradient :math:`g_t = \\nabla_z \\log \\tilde p(x, z_t)`:

    .. math::
      z_{t+1} = z_t + \\frac{\\eta_t}{2} g_t + \\sqrt{\\eta_t}\\, \\xi_t, \\qquad \\xi_t \\sim N(0, I).

    `learning_rate` is the Langevin step :math:`\\eta` in squared position units (the noise variance
    per step). With a decreasing schedule (:math:`\\sum \\eta_t = \\infty, \\sum \\eta_t^2 < \\infty`)
    the chain converges to the posterior; with a constant rate its bias is :math:`O(\\eta)`.

    Args:
      learning_rate: a positive float, or an optax schedule `count -> rate`.

    Raises:
      ValueError, TypeError: a non-positive or non-numeric `learning_rate`.

    Example:
      >>> sgld = SGLD(learning_rate=1e-4)
      >>> state = sgld.init({"w": jnp.zeros(3)})
      >>> state, info = sgld.step(key, state, model, {"y": y_batch})

    References:
      Welling and Teh, `Bayesian Learning via Stochastic Gradient Langevin Dynamics
      <https://www.stats.ox.ac.uk/~teh/research/compstats/WelTeh2011a.pdf>`_, 2011.
    """

    def __init__(self, learning_rate: float | Callable[[jax.Array], jax.Array]):
        self.learning_rate = check_learning_rate(learning_rate)

    def init(self, latent: Mapping[str, Any]) -> SGLDState:
        """The state at `latent` (`{name: array}`), step count 0.

        Raises:
          TypeError: `latent` is empty or holds non-floating arrays.
        """
        return SGLDState(check_latent(latent), jnp.zeros((), jnp.int32))

    def _update(self, key, state, grads):
        lr = learning_rate_at(self.learning_rate, state.count)
        noise = normal_like(key, state.position, jnp.sqrt(lr))
        position = jax.tree.map(lambda z, g, n: z + (0.5 * lr * g + n).astype(z.dtype),
                                state.position, grads, noise)
        return SGLDState(position, state.count + 1), SGLDInfo(lr)
