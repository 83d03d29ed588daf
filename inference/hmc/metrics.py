"""Euclidean-Gaussian kinetic energy: momentum sampling, kinetic energy and velocity M^{-1} p.

The momentum is a flat vector over the raveled position (`jax.flatten_util.ravel_pytree`); the
inverse mass matrix is a vector `[d]` (diagonal) or a matrix `[d, d]` (dense).

.. math::
  K(p) = \\tfrac12 p^\\top M^{-1} p, \\qquad p \\sim \\mathcal N(0, M)

References:
  Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011, section 4.1.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from inference.hmc import prng

__all__ = ["Metric", "gaussian_euclidean"]


class Metric(NamedTuple):
    """The three functions of a Gaussian kinetic energy.

    Attributes:
      sample_momentum: `(key, flat_position [d]) -> momentum [d]`, drawn from N(0, M).
      kinetic_energy: `momentum [d] -> []`, 0.5 p^T M^{-1} p.
      velocity: `momentum [d] -> [d]`, M^{-1} p (the position's time derivative).
    """

    sample_momentum: Callable[[jax.Array, jax.Array], jax.Array]
    kinetic_energy: Callable[[jax.Array], jax.Array]
    velocity: Callable[[jax.Array], jax.Array]


def gaussian_euclidean(inverse_mass_matrix: jax.Array) -> Metric:
    """The `Metric` of a Gaussian momentum with covariance M = inverse_mass_matrix^{-1}.

    Args:
      inverse_mass_matrix: shape `[d]` (diagonal M^{-1}) or `[d, d]` (dense, positive definite).

    Returns:
      A `Metric`.

    Raises:
      ValueError: `inverse_mass_matrix` is not 1-D or square 2-D.
    """
    inverse_mass_matrix = jnp.asarray(inverse_mass_matrix)
    shape = jnp.shape(inverse_mass_matrix)
    # the factorisations are made where a momentum is drawn (once per transition), not here: a kernel
    # that builds the metric inside its leapfrog loop (for `velocity`) must not trace them per step
    if len(shape) == 1:
        def sample_momentum(key, flat_position):
            scale = jnp.sqrt(1.0 / inverse_mass_matrix)
            return scale * prng.normal(key, jnp.shape(flat_position), jnp.result_type(flat_position))

        def velocity(momentum):
            return inverse_mass_matrix * momentum

    elif len(shape) == 2 and shape[0] == shape[1]:
        def sample_momentum(key, flat_position):
            cholesky = jnp.linalg.cholesky(inverse_mass_matrix)
            z = prng.normal(key, jnp.shape(flat_position), jnp.result_type(flat_position))
            # M^{-1} = L L^T  =>  p = L^{-T} z has covariance (L L^T)^{-1} = M.
            return jsl.solve_triangular(cholesky, z, lower=True, trans="T")

        def velocity(momentum):
            return inverse_mass_matrix @ momentum

    else:
        raise ValueError(f"inverse_mass_matrix must have shape [d] or [d, d], got {shape}")

    def kinetic_energy(momentum):
        return 0.5 * jnp.dot(momentum, velocity(momentum))

    return Metric(sample_momentum, kinetic_energy, velocity)
