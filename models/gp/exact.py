"""Exact Gaussian-process regression in the DSL: the marginal likelihood, the posterior, and
type-II maximum likelihood of the hyperparameters with optax.

The model is one DSL node, `y ~ MultivariateNormal(0, K(x, x) + (noise_variance + jitter) I)`; its
log-density at the observed targets is the log marginal likelihood. Hyperparameters live in
`GPParams` as logarithms, so plain gradient steps keep them positive.

References:
  Rasmussen and Williams, `Gaussian Processes for Machine Learning
  <https://gaussianprocess.org/gpml/chapters/>`_, chapters 2 and 5, 2006.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import optax

import inference
import ppl
from models.gp import kernels

__all__ = [
    "STATIONARY_KERNELS",
    "GPParams",
    "build_exact_gp",
    "cholesky",
    "exact_posterior",
    "fit_exact",
    "init_params",
    "kernel_fn",
    "log_marginal_likelihood",
]

STATIONARY_KERNELS = {"rbf": kernels.rbf, "matern32": kernels.matern32, "matern52": kernels.matern52}


class GPParams(NamedTuple):
    """Hyperparameters of a stationary GP with Gaussian noise, all as logarithms.

    Attributes:
      log_lengthscale: `[d]`, one lengthscale per input dimension (ARD), in input units.
      log_variance: `[]`, the signal variance (squared output units).
      log_noise_variance: `[]`, the observation-noise variance (squared output units).
    """

    log_lengthscale: jax.Array
    log_variance: jax.Array
    log_noise_variance: jax.Array


def init_params(n_features: int, lengthscale=1.0, variance=1.0, noise_variance=0.1) -> GPParams:
    """`GPParams` with the given (positive) starting values; lengthscale is shared by all `d` inputs."""
    return GPParams(jnp.full([n_features], jnp.log(lengthscale)), jnp.log(jnp.asarray(variance)),
                    jnp.log(jnp.asarray(noise_variance)))


def kernel_fn(kernel, params) -> kernels.KernelFn:
    """The kernel named `kernel` ("rbf", "matern32", "matern52") with the hyperparameters bound.

    Args:
      kernel: a name, with `params` a `GPParams`; or a callable `kernel(params) -> KernelFn` for a
        custom kernel, with `params` any pytree that has a `log_noise_variance` field.
      params: the hyperparameters.

    Raises:
      ValueError: an unknown kernel name.
    """
    if callable(kernel):
        return kernel(params)
    if kernel not in STATIONARY_KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {sorted(STATIONARY_KERNELS)}")
    return functools.partial(STATIONARY_KERNELS[kernel], lengthscale=jnp.exp(params.log_lengthscale),
                             variance=jnp.exp(params.log_variance))


@jax.custom_vjp
def cholesky(matrix: jax.Array) -> jax.Array:
    """Lower Cholesky factor of a symmetric positive-definite `[n, n]` matrix, with a fast gradient.

    Same value as `jnp.linalg.cholesky`; the reverse-mode rule (Murray 2016, eq. 10) uses only
    left-sided triangular solves, which on CPU are many times faster than the default rule.

    References:
      Murray, `Differentiation of the Cholesky decomposition <https://arxiv.org/abs/1602.07527>`_, 2016.
    """
    return jnp.linalg.cholesky(matrix)


def _cholesky_fwd(matrix):
    chol = jnp.linalg.cholesky(matrix)
    return chol, chol


def _cholesky_bwd(chol, chol_bar):
    phi = jnp.tril(chol.T @ chol_bar)
    phi = phi - 0.5 * jnp.diag(jnp.diag(phi))
    left = jsl.solve_triangular(chol, phi, lower=True, trans=1)  # L^-T phi
    sym = jsl.solve_triangular(chol, left.T, lower=True, trans=1).T  # L^-T phi L^-1
    return (0.5 * (sym + sym.T),)


cholesky.defvjp(_cholesky_fwd, _cholesky_bwd)


def _check_data(x, y):
    if jnp.ndim(x) != 2 or jnp.ndim(y) != 1 or jnp.shape(x)[0] != jnp.shape(y)[0]:
        raise ValueError(f"x must be [n, d] and y [n] with the same n, got shapes {jnp.shape(x)} "
                         f"and {jnp.shape(y)}")


@ppl.meta_bayesian_net
def build_exact_gp(params, x: jax.Array, kernel="rbf", jitter: float = 1e-6):
    """The GP regression model with f marginalised: one node `y` of shape `[n]`.

    .. math:: y \\sim \\mathcal{N}(0, K(x, x) + (\\sigma^2 + \\epsilon) I)

    Args:
      params: `GPParams` (or a custom kernel's parameters, see `kernel_fn`).
      x: inputs, `[n, d]`.
      kernel: "rbf", "matern32", "matern52", or a callable as in `kernel_fn`.
      jitter: added to the diagonal for a stable Cholesky factorisation.

    Returns:
      A `ppl.BayesianNet` with node `y`; `observe(y=y).log_joint()` is the log marginal likelihood.
    """
    k = kernel_fn(kernel, params)(x, x)
    cov = k + (jnp.exp(params.log_noise_variance) + jitter) * jnp.eye(x.shape[0])
    bn = ppl.BayesianNet()
    bn.multivariate_normal_cholesky("y", jnp.zeros(x.shape[0]), cholesky(cov))
    return bn


def log_marginal_likelihood(params: GPParams, x: jax.Array, y: jax.Array, kernel: str | Callable = "rbf",
                            jitter: float = 1e-6) -> jax.Array:
    """log p(y | x, params) in nats (a scalar, to maximise), by the DSL model `build_exact_gp`.

    Raises:
      ValueError: `x` is not `[n, d]` or `y` not `[n]`.
    """
    _check_data(x, y)
    return build_exact_gp(params, x, kernel, jitter).observe(y=y).log_joint()


def exact_posterior(params: GPParams, x: jax.Array, y: jax.Array, x_test: jax.Array,
                    kernel: str | Callable = "rbf", jitter: float = 1e-6) -> tuple[jax.Array, jax.Array]:
    """Posterior mean and variance of the latent f at `x_test` (Rasmussen and Williams, alg. 2.1).

    Args:
      params, kernel, jitter: as in `build_exact_gp`.
      x: training inputs `[n, d]`; y: training targets `[n]`; x_test: `[m, d]`.

    Returns:
      `(mean [m], variance [m])` of f(x_test); add `exp(log_noise_variance)` for the variance of y.
    """
    _check_data(x, y)
    k = kernel_fn(kernel, params)
    chol = cholesky(k(x, x) + (jnp.exp(params.log_noise_variance) + jitter) * jnp.eye(x.shape[0]))
    alpha = jsl.cho_solve((chol, True), y)
    k_cross = k(x, x_test)  # [n, m]
    v = jsl.solve_triangular(chol, k_cross, lower=True)
    k_diag = jax.vmap(lambda row: k(row[None], row[None])[0, 0])(x_test)  # [m]
    return k_cross.T @ alpha, jnp.maximum(k_diag - jnp.sum(v**2, 0), 0.0)


def fit_exact(x: jax.Array, y: jax.Array, kernel: str | Callable = "rbf", params: Any = None,
              n_steps: int = 500, learning_rate: float = 0.05, jitter: float = 1e-6, *,
              progress_bar: bool = False, **fit_options) -> inference.TrainResult:
    """Type-II maximum likelihood: maximises the log marginal likelihood with Adam, through `inference.fit`.

    Every step takes the whole data set (one epoch of `inference.fit` is one full-batch step).

    Args:
      x: `[n, d]`; y: `[n]` (best standardised); kernel, jitter: as in `build_exact_gp`.
      params: the starting hyperparameters (default `init_params(d)`; any pytree a callable
        `kernel(params)` reads, with a `log_noise_variance` field).
      n_steps: Adam steps.
      learning_rate: Adam's step size (in log-hyperparameter units).
      progress_bar: show `inference.fit`'s bar.
      **fit_options: passed to `inference.fit` (`checkpoint_dir`, `checkpoint_every`, `resume`, ...).

    Returns:
      An `inference.TrainResult`: `params` the fitted hyperparameters;
      `history["log_marginal_likelihood"]` `[n_steps]` in nats, before each step.

    Raises:
      ValueError: bad shapes or an unknown kernel (before any computation).

    Example:
      >>> result = fit_exact(x, y, "rbf", n_steps=200)
      >>> mean, variance = exact_posterior(result.params, x, y, x_test)
    """
    _check_data(x, y)
    if not callable(kernel):
        kernel_fn(kernel, init_params(1))
    params = init_params(x.shape[1]) if params is None else params
    optimizer, loss_fn = _evidence_loss(kernel, float(learning_rate), float(jitter))
    x, y = jnp.asarray(x), jnp.asarray(y)
    return inference.fit(jax.random.key(0), loss_fn, params, optimizer, (x, y), n_epochs=int(n_steps),
                         batch_size=x.shape[0], shuffle=False, progress_bar=progress_bar, **fit_options)


@functools.lru_cache(maxsize=16)   # one loss per configuration, so later fits reuse fit's compiled program
def _evidence_loss(kernel, learning_rate: float, jitter: float):
    def loss_fn(params, key, batch, state):
        del key                                                    # deterministic
        value = log_marginal_likelihood(params, batch[0], batch[1], kernel, jitter)
        return -value, (state, {"log_marginal_likelihood": value})

    return optax.adam(learning_rate), loss_fn
