"""Preconditioned stochastic gradient Langevin dynamics (pSGLD) with the RMSprop preconditioner."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from inference.sgmcmc.base import SGMCMC, check_latent, check_learning_rate
from inference.sgmcmc.gradients import learning_rate_at, normal_like

__all__ = ["PSGLD", "PSGLDInfo", "PSGLDState"]


class PSGLDState(NamedTuple):
    """pSGLD's state.

    Attributes:
      position: `{name: array}`, the current sample.
      square_avg: `{name: array}` like `position`, the moving average of squared gradients `V`.
      count: steps taken, int32 of shape `[]`.
    """

    position: dict
    square_avg: dict
    count: jax.Array


class PSGLDInfo(NamedTuple):
    """pSGLD's diagnostics.

    Attributes:
      learning_rate: the rate used in the step, shape `[]`.
      mean_preconditioner: `{name: array []}`, the mean of the diagonal preconditioner `G`.
    """

    learning_rate: jax.Array
    mean_preconditioner: dict


class PSGLD(SGMCMC):
    """Preconditioned SGLD (Li, Chen, Carlson and Carin, 2016), as in ZhuSuan's `PSGLD`.

    Equations (4)-(5) of the paper with the RMSprop preconditioner; like the paper's practical
    algorithm and ZhuSuan, the correction term :math:`\\Gamma(z)` is dropped (its effect is small
    when `decay` is close to 1 and vanishes as :math:`\\eta \\to 0`):

    .. math::
      V_{t+1} &= \\beta V_t + (1 - \\beta)\\, g_t \\odot g_t, \\qquad
      G_{t+1} = 1 / (\\epsilon + \\sqrt{V_{t+1}}),\\\\
      z_{t+1} &= z_t + \\frac{\\eta_t}{2} G_{t+1} \\odot g_t + \\sqrt{\\eta_t G_{t+1}} \\odot \\xi_t,
      \\qquad \\xi_t \\sim N(0, I),

    with :math:`\\beta` = `decay`, :math:`\\epsilon` = `epsilon`, `V` starting at 0, and
    :math:`g_t` the (minibatch) log-joint gradient at :math:`z_t`. `learning_rate` is :math:`\\eta`
    as in `SGLD`, scaled per coordinate by `G`.

    Args:
      learning_rate: a positive float, or an optax schedule `count -> rate`.
      decay: the moving-average rate :math:`\\beta \\in [0, 1)`.
      epsilon: the damping :math:`\\epsilon > 0` (bounds `G` by `1 / epsilon`).

    Raises:
      ValueError: `decay` outside [0, 1), `epsilon <= 0`, or a bad `learning_rate`.

    References:
      Li, Chen, Carlson and Carin, `Preconditioned Stochastic Gradient Langevin Dynamics for Deep
      Neural Networks <https://arxiv.org/abs/1512.07666>`_, 2016.
    """

    def __init__(self, learning_rate: float | Callable[[jax.Array], jax.Array], decay: float = 0.9,
                 epsilon: float = 1e-3):
        self.learning_rate = check_learning_rate(learning_rate)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"PSGLD decay must be in [0, 1), got {decay!r}")
        if not epsilon > 0.0:
            raise ValueError(f"PSGLD epsilon must be positive, got {epsilon!r}")
        self.decay = decay
        self.epsilon = epsilon

    def init(self, latent: Mapping[str, Any]) -> PSGLDState:
        """The state at `latent`, with `square_avg` at 0 (as in ZhuSuan). See `SGLD.init`."""
        position = check_latent(latent)
        return PSGLDState(position, jax.tree.map(jnp.zeros_like, position), jnp.zeros((), jnp.int32))

    def _update(self, key, state, grads):
        lr = learning_rate_at(self.learning_rate, state.count)
        square_avg = jax.tree.map(lambda v, g: self.decay * v + (1.0 - self.decay) * g * g,
                                  state.square_avg, grads)
        precond = jax.tree.map(lambda v: 1.0 / (self.epsilon + jnp.sqrt(v)), square_avg)
        noise = normal_like(key, state.position, jax.tree.map(lambda p: jnp.sqrt(lr * p), precond))
        position = jax.tree.map(lambda z, g, p, n: z + (0.5 * lr * p * g + n).astype(z.dtype),
                                state.position, grads, precond, noise)
        info = PSGLDInfo(lr, jax.tree.map(jnp.mean, precond))
        return PSGLDState(position, square_avg, state.count + 1), info
