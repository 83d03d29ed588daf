"""Covariance functions for Gaussian processes, as small pure functions of two input sets.

Every kernel takes `x1` of shape `[n1, d]` and `x2` of shape `[n2, d]` and returns the covariance
matrix of shape `[n1, n2]`; hyperparameters are keyword arguments (positive values, in the units of
the inputs for lengthscales and periods, squared output units for variances). `add` and `multiply`
combine kernels that have their hyperparameters bound (e.g. with `functools.partial`).

Example:
  >>> k = add(partial(rbf, lengthscale=2.), partial(periodic, period=1., lengthscale=1.))
  >>> k(jnp.zeros([3, 1]), jnp.ones([4, 1])).shape
  (3, 4)

References:
  Rasmussen and Williams, `Gaussian Processes for Machine Learning
  <https://gaussianprocess.org/gpml/chapters/>`_, chapter 4, 2006.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "KernelFn",
    "add",
    "check_inputs",
    "linear",
    "matern32",
    "matern52",
    "multiply",
    "periodic",
    "rbf",
    "scaled_sq_distance",
]

KernelFn = Callable[[jax.Array, jax.Array], jax.Array]
"""`(x1 [n1, d], x2 [n2, d]) -> K [n1, n2]`."""


def check_inputs(x1: jax.Array, x2: jax.Array) -> None:
    """Raises ValueError unless `x1` is `[n1, d]` and `x2` is `[n2, d]` with the same `d`."""
    if jnp.ndim(x1) != 2 or jnp.ndim(x2) != 2 or jnp.shape(x1)[1] != jnp.shape(x2)[1]:
        raise ValueError(f"kernel inputs must be [n1, d] and [n2, d] with the same d, got shapes "
                         f"{jnp.shape(x1)} and {jnp.shape(x2)}")


def scaled_sq_distance(x1: jax.Array, x2: jax.Array, lengthscale) -> jax.Array:
    """Squared Euclidean distance after dividing each input dimension by its lengthscale.

    Args:
      x1: `[n1, d]`; x2: `[n2, d]`; lengthscale: scalar or `[d]` (automatic relevance determination).

    Returns:
      `[n1, n2]`, clipped at 0 (the expanded form can round slightly negative).
    """
    check_inputs(x1, x2)
    a, b = x1 / lengthscale, x2 / lengthscale
    sq = jnp.sum(a**2, -1)[:, None] + jnp.sum(b**2, -1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(sq, 0.0)


def _distance(x1, x2, lengthscale):
    # sqrt with a safe gradient at 0 (the diagonal of K(x, x))
    sq = scaled_sq_distance(x1, x2, lengthscale)
    is_zero = sq < 1e-12
    return jnp.where(is_zero, 0.0, jnp.sqrt(jnp.where(is_zero, 1.0, sq)))


def rbf(x1: jax.Array, x2: jax.Array, *, lengthscale=1.0, variance=1.0) -> jax.Array:
    """Squared-exponential kernel, `variance * exp(-|x1 - x2|^2 / (2 lengthscale^2))`."""
    return variance * jnp.exp(-0.5 * scaled_sq_distance(x1, x2, lengthscale))


def matern32(x1: jax.Array, x2: jax.Array, *, lengthscale=1.0, variance=1.0) -> jax.Array:
    """Matern 3/2: `variance * (1 + sqrt(3) r) exp(-sqrt(3) r)`, r the scaled distance."""
    r = jnp.sqrt(3.0) * _distance(x1, x2, lengthscale)
    return variance * (1.0 + r) * jnp.exp(-r)


def matern52(x1: jax.Array, x2: jax.Array, *, lengthscale=1.0, variance=1.0) -> jax.Array:
    """Matern 5/2: `variance * (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)`."""
    r = _distance(x1, x2, lengthscale)
    s = jnp.sqrt(5.0) * r
    return variance * (1.0 + s + 5.0 / 3.0 * r**2) * jnp.exp(-s)


def periodic(x1: jax.Array, x2: jax.Array, *, period=1.0, lengthscale=1.0, variance=1.0) -> jax.Array:
    """Periodic kernel (MacKay 1998): `variance * exp(-2 sum_j sin^2(pi |x1_j - x2_j| / period) / l^2)`.

    References:
      MacKay, `Introduction to Gaussian processes
      <https://www.inference.org.uk/mackay/gpB.pdf>`_, 1998.
    """
    check_inputs(x1, x2)
    diff = x1[:, None, :] - x2[None, :, :]
    sin2 = jnp.sin(jnp.pi * diff / period) ** 2
    return variance * jnp.exp(-2.0 * jnp.sum(sin2 / jnp.square(lengthscale), -1))


def linear(x1: jax.Array, x2: jax.Array, *, variance=1.0, offset=0.0) -> jax.Array:
    """Linear (dot-product) kernel: `variance * (x1 - offset) . (x2 - offset)`; rank at most d."""
    check_inputs(x1, x2)
    return variance * (x1 - offset) @ (x2 - offset).T


def add(*kernels: KernelFn) -> KernelFn:
    """The sum of kernels (covariance of a sum of independent processes)."""
    if not kernels:
        raise ValueError("add() needs at least one kernel")
    return lambda x1, x2: functools.reduce(jnp.add, [k(x1, x2) for k in kernels])


def multiply(*kernels: KernelFn) -> KernelFn:
    """The elementwise product of kernels (positive semi-definite by the Schur product theorem)."""
    if not kernels:
        raise ValueError("multiply() needs at least one kernel")
    return lambda x1, x2: functools.reduce(jnp.multiply, [k(x1, x2) for k in kernels])
