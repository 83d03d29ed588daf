"""The HMC transition kernel: pure functions over `HMCState`, one chain per call.

`init(position, log_joint_fn)` caches log p and its gradient; `build_kernel()` returns
`kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix, n_leapfrogs) -> (state, info)`:
draw a momentum, integrate with velocity Verlet (`n_leapfrogs` gradient evaluations), and accept
or reject with a Metropolis step that treats a non-finite energy as a rejection. A transition
whose energy error exceeds `divergence_threshold` nats (or is not finite) is flagged divergent,
as in Stan and NumPyro. Chains are batched with `jax.vmap`.

References:
  Duane, Kennedy, Pendleton and Roweth, `Hybrid Monte Carlo
  <https://doi.org/10.1016/0370-2693(87)91197-X>`_, 1987;
  Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from inference.hmc import prng
from inference.hmc.integrators import IntegratorState, leapfrog_trajectory, velocity_verlet
from inference.hmc.metrics import gaussian_euclidean

__all__ = ["HMCState", "HMCInfo", "init", "build_kernel", "energy_change", "safe_energy_change", "transition"]


class HMCState(NamedTuple):
    """What the next transition needs.

    Attributes:
      position: a pytree of latents (a dict or an array), unconstrained space.
      log_joint: log p(position), shape `[]`.
      log_joint_grad: its gradient, same structure as `position`.
    """

    position: Any
    log_joint: jax.Array
    log_joint_grad: Any


class HMCInfo(NamedTuple):
    """Diagnostics of one transition (all shape `[]`).

    Attributes:
      acceptance_rate: min(1, exp(-energy change)) of the proposal, 0 when its energy is not finite.
      is_accepted: whether the proposal was accepted.
      is_divergent: energy change > `divergence_threshold` nats, or not finite.
      energy: the Hamiltonian -log p + K of the returned state (nats).
      energy_change: proposal energy minus initial energy (nats; NaN/inf kept as computed).
    """

    acceptance_rate: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    energy_change: jax.Array


def init(position: Any, log_joint_fn: Callable) -> HMCState:
    """Evaluates log p and its gradient at `position`.

    Args:
      position: a pytree of float arrays (unconstrained latents).
      log_joint_fn: `position -> log p`, shape `[]`.

    Returns:
      An `HMCState`.

    Raises:
      ValueError: `log_joint_fn` does not return a scalar.
    """
    log_joint, log_joint_grad = jax.value_and_grad(_checked(log_joint_fn))(position)
    return HMCState(position, log_joint, log_joint_grad)


def _checked(log_joint_fn):
    def fn(position):
        value = log_joint_fn(position)
        if jnp.shape(value) != ():
            raise ValueError(f"log_joint_fn must return a scalar, got shape {jnp.shape(value)}; "
                             "sum over data points and samples")
        return value
    return fn


def energy_change(log_joint_fn: Callable, state: HMCState, key: jax.Array, step_size: ArrayLike,
                  inverse_mass_matrix: ArrayLike, n_leapfrogs: ArrayLike
                  ) -> tuple[IntegratorState, jax.Array, jax.Array]:
    """Energy change of one proposal from `state` (used by the initial step-size search).

    Returns:
      `(proposal IntegratorState, initial energy, proposal energy)`.
    """
    metric = gaussian_euclidean(jnp.asarray(inverse_mass_matrix))
    flat_position, _ = ravel_pytree(state.position)
    momentum = metric.sample_momentum(key, flat_position)
    start = IntegratorState(state.position, momentum, state.log_joint, state.log_joint_grad)
    step = velocity_verlet(log_joint_fn, metric.velocity)
    end = leapfrog_trajectory(step, start, step_size, n_leapfrogs)
    energy0 = -state.log_joint + metric.kinetic_energy(momentum)
    energy1 = -end.log_joint + metric.kinetic_energy(end.momentum)
    return end, energy0, energy1


def safe_energy_change(energy0: jax.Array, energy1: jax.Array) -> jax.Array:
    """`energy1 - energy0` (nats), with a non-finite `energy1` (NaN, or -inf from an overflowing
    log-joint) read as +inf: such a point is rejected, has zero weight, and is divergent."""
    return jnp.where(jnp.isfinite(energy1), energy1 - energy0, jnp.inf)


def transition(key: jax.Array, state: HMCState, log_joint_fn: Callable, step_size: ArrayLike,
               inverse_mass_matrix: ArrayLike, n_leapfrogs: ArrayLike, divergence_threshold: float = 1000.0
               ) -> tuple[HMCState, HMCInfo, IntegratorState]:
    """One HMC transition; also returns the proposal (the trajectory's end, before Metropolis).

    See `build_kernel` for the arguments.

    Returns:
      `(HMCState, HMCInfo, proposal IntegratorState)`.
    """
    key_momentum, key_accept = prng.split(key)
    end, energy0, energy1 = energy_change(log_joint_fn, state, key_momentum, step_size, inverse_mass_matrix,
                                          n_leapfrogs)
    delta = energy1 - energy0
    safe_delta = safe_energy_change(energy0, energy1)
    acceptance_rate = jnp.minimum(1.0, jnp.exp(-safe_delta))
    is_divergent = safe_delta > divergence_threshold
    log_u = jnp.log(prng.uniform(key_accept, dtype=jnp.result_type(delta)))
    is_accepted = log_u < -safe_delta
    proposal = HMCState(end.position, end.log_joint, end.log_joint_grad)
    new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(is_accepted, a, b), proposal, state)
    energy = jnp.where(is_accepted, energy1, energy0)
    return new_state, HMCInfo(acceptance_rate, is_accepted, is_divergent, energy, delta), end


def build_kernel(divergence_threshold: float = 1000.0) -> Callable[..., tuple[HMCState, HMCInfo]]:
    """Returns the HMC transition `kernel`.

    Args:
      divergence_threshold: energy error (nats) above which a transition is called divergent.

    Returns:
      `kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix, n_leapfrogs)
      -> (HMCState, HMCInfo)`, where `step_size` is a scalar, `inverse_mass_matrix` has shape
      `[d]` or `[d, d]` over the raveled position (d scalars), and `n_leapfrogs` is an int.

    Example:
      >>> kernel = build_kernel()
      >>> state = init(jnp.zeros(2), lambda x: -0.5 * jnp.sum(x ** 2))
      >>> state, info = kernel(key, state, lambda x: -0.5 * jnp.sum(x ** 2), 0.5, jnp.ones(2), 10)

    References:
      Betancourt, `A Conceptual Introduction to Hamiltonian Monte Carlo
      <https://arxiv.org/abs/1701.02434>`_, 2017, section 6.2 (divergences).
    """

    def kernel(key, state: HMCState, log_joint_fn, step_size, inverse_mass_matrix, n_leapfrogs):
        new_state, info, _ = transition(key, state, log_joint_fn, step_size, inverse_mass_matrix, n_leapfrogs,
                                        divergence_threshold)
        return new_state, info

    return kernel
