"""Kernels: positive semi-definite Gram matrices, known values, combinators and input checks."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.gp import kernels

KERNELS = {
    "rbf": partial(kernels.rbf, lengthscale=0.7, variance=1.5),
    "rbf_ard": partial(kernels.rbf, lengthscale=jnp.array([0.5, 2.0]), variance=1.0),
    "matern32": partial(kernels.matern32, lengthscale=0.8, variance=2.0),
    "matern52": partial(kernels.matern52, lengthscale=1.2, variance=0.5),
    "periodic": partial(kernels.periodic, period=1.3, lengthscale=0.9, variance=1.1),
    "linear": partial(kernels.linear, variance=0.7, offset=0.2),
    "sum": kernels.add(partial(kernels.rbf, lengthscale=3.0), partial(kernels.linear, variance=0.1)),
    "product": kernels.multiply(partial(kernels.periodic, period=0.5), partial(kernels.matern52)),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_gram_matrix_is_symmetric_positive_semidefinite(name):
    x = jax.random.normal(jax.random.key(1), (40, 2))
    with jax.enable_x64(True):
        gram = np.asarray(KERNELS[name](jnp.asarray(x, jnp.float64), jnp.asarray(x, jnp.float64)))
    np.testing.assert_allclose(gram, gram.T, atol=1e-12)
    eigenvalues = np.linalg.eigvalsh(gram)
    # float64 round-off on a 40x40 matrix with entries O(1): eigenvalues are exact to ~1e-12
    assert eigenvalues.min() >= -1e-9 * max(1.0, eigenvalues.max())


def test_values_against_closed_forms():
    x1, x2 = jnp.array([[0.0]]), jnp.array([[1.5]])
    r = 1.5 / 0.5
    np.testing.assert_allclose(kernels.rbf(x1, x2, lengthscale=0.5, variance=2.0), 2 * np.exp(-r**2 / 2),
                               rtol=1e-6)
    s3 = np.sqrt(3) * r
    np.testing.assert_allclose(kernels.matern32(x1, x2, lengthscale=0.5), (1 + s3) * np.exp(-s3), rtol=1e-5)
    s5 = np.sqrt(5) * r
    np.testing.assert_allclose(kernels.matern52(x1, x2, lengthscale=0.5),
                               (1 + s5 + s5**2 / 3) * np.exp(-s5), rtol=1e-5)
    # one full period apart: perfectly correlated
    np.testing.assert_allclose(kernels.periodic(x1, x1 + 2.0, period=2.0, variance=3.0), 3.0, rtol=1e-6)
    np.testing.assert_allclose(kernels.linear(jnp.array([[2.0]]), jnp.array([[3.0]]), variance=0.5), 3.0)


def test_diagonal_gradient_is_finite():
    # the Matern kernels use a safe sqrt: d/dl K(x, x) must not be nan at zero distance
    x = jnp.array([[0.3, -1.0], [0.3, -1.0]])
    for kernel in (kernels.matern32, kernels.matern52):
        grad = jax.grad(lambda ls, k=kernel: jnp.sum(k(x, x, lengthscale=ls)))(1.0)
        assert np.isfinite(grad)


def test_combinators_and_shape_errors():
    x, y = jnp.ones([3, 1]), jnp.zeros([4, 1])
    k = kernels.add(kernels.rbf, kernels.rbf)
    np.testing.assert_allclose(k(x, y), 2 * kernels.rbf(x, y))
    np.testing.assert_allclose(kernels.multiply(kernels.rbf, kernels.rbf)(x, y), kernels.rbf(x, y) ** 2)
    with pytest.raises(ValueError, match=r"\[n1, d\] and \[n2, d\]"):
        kernels.rbf(jnp.ones([3, 2]), jnp.ones([3, 1]))
    with pytest.raises(ValueError, match="at least one kernel"):
        kernels.add()
