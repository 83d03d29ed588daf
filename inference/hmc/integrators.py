"""The velocity Verlet (leapfrog) integrator, reusing the cached gradient between steps.

A trajectory of `n_leapfrogs` steps starts from a state that already holds log p and its
gradient at the initial position, so it costs exactly `n_leapfrogs` gradient evaluations (the one
at the initial position was paid by the previous transition, or by `init`).

.. math::
  p_{1/2} = p + \\tfrac{\\epsilon}{2} \\nabla \\log p(q), \\quad
  q' = q + \\epsilon M^{-1} p_{1/2}, \\quad
  p' = p_{1/2} + \\tfrac{\\epsilon}{2} \\nabla \\log p(q')

References:
  Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011, section 2.3;
  Leimkuhler and Reich, Simulating Hamiltonian Dynamics, Cambridge University Press, 2004.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

__all__ = ["IntegratorState", "velocity_verlet", "leapfrog_trajectory"]

_MAX_UNROLL = 16  # trajectories up to this many steps are unrolled into straight-line XLA code


class IntegratorState(NamedTuple):
    """A point of phase space with the cached log-joint and its gradient.

    Attributes:
      position: a pytree (a dict of latents or an array).
      momentum: flat vector `[d]`, d = the number of scalars in `position`.
      log_joint: log p(position), shape `[]`.
      log_joint_grad: its gradient, same structure as `position`.
    """

    position: Any
    momentum: jax.Array
    log_joint: jax.Array
    log_joint_grad: Any


def velocity_verlet(log_joint_fn: Callable, velocity_fn: Callable[[jax.Array], jax.Array]
                    ) -> Callable[[IntegratorState, ArrayLike], IntegratorState]:
    """One velocity Verlet step as a function `(state, step_size) -> state`.

    Args:
      log_joint_fn: `position -> log p(position)`, shape `[]`.
      velocity_fn: `momentum [d] -> M^{-1} momentum [d]` (see `inference.hmc.metrics`).

    Returns:
      `step(state: IntegratorState, step_size) -> IntegratorState`, one gradient evaluation each.
    """
    value_and_grad = jax.value_and_grad(log_joint_fn)

    def step(state: IntegratorState, step_size) -> IntegratorState:
        flat_position, unravel = ravel_pytree(state.position)
        flat_grad, _ = ravel_pytree(state.log_joint_grad)
        momentum = state.momentum + 0.5 * step_size * flat_grad
        position = unravel(flat_position + step_size * velocity_fn(momentum))
        log_joint, log_joint_grad = value_and_grad(position)
        flat_grad, _ = ravel_pytree(log_joint_grad)
        momentum = momentum + 0.5 * step_size * flat_grad
        return IntegratorState(position, momentum, log_joint, log_joint_grad)

    return step


def leapfrog_trajectory(step: Callable, state: IntegratorState, step_size: ArrayLike,
                        n_leapfrogs: ArrayLike) -> IntegratorState:
    """Applies `step` `n_leapfrogs` times.

    Args:
      step: from `velocity_verlet`.
      state: the starting point.
      step_size: scalar, in position units per unit of fictitious time.
      n_leapfrogs: a Python int (short trajectories are unrolled) or a traced integer.

    Returns:
      The end point of the trajectory.
    """
    if isinstance(n_leapfrogs, int):
        if n_leapfrogs <= _MAX_UNROLL:
            for _ in range(n_leapfrogs):
                state = step(state, step_size)
            return state
        return lax.fori_loop(0, n_leapfrogs, lambda _, s: step(s, step_size), state)
    return lax.fori_loop(0, jnp.asarray(n_leapfrogs), lambda _, s: step(s, step_size), state)
