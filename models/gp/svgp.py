"""Sparse variational Gaussian process (SVGP) regression in the DSL, trained by minibatch SGVB.

Whitened parameterisation (Hensman et al. 2013; Salimbeni and Deisenroth 2017, section 2.1, as in
ZhuSuan's `examples/gaussian_process/svgp.py`): with inducing inputs Z (`[m, d]`) and
`L = chol(K(Z, Z) + jitter I)`, the inducing values are `u = L v` with `v ~ N(0, I)`, and

.. math::
  f(x) \\mid v \\sim \\mathcal{N}(A^\\top v,\\ k(x, x) - \\operatorname{diag}(A^\\top A)),
  \\quad A = L^{-1} K(Z, x), \\qquad y \\mid f \\sim \\mathcal{N}(f, \\sigma^2).

The variational family is `q(v) = N(mean, tril tril^T)` with `f | v` as in the prior, so the
`p(f | v)` terms cancel from the ELBO (ZhuSuan leaves them out of both sides); the likelihood of a
minibatch of B of the N training points is rescaled by N / B through `model.log_joint = fn`.

References:
  Hensman, Fusi and Lawrence, `Gaussian Processes for Big Data <https://arxiv.org/abs/1309.6835>`_,
  2013.
  Salimbeni and Deisenroth, `Doubly Stochastic Variational Inference for Deep Gaussian Processes
  <https://arxiv.org/abs/1705.08933>`_, 2017.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax

import inference
import ppl
from models.gp.exact import GPParams, cholesky, kernel_fn

__all__ = [
    "SVGPParams",
    "build_svgp",
    "build_svgp_variational",
    "conditional",
    "fit_svgp",
    "init_svgp_params",
    "predict_svgp",
    "q_tril",
    "svgp_elbo",
    "tril_raw_from",
]


class SVGPParams(NamedTuple):
    """Everything an SVGP learns.

    Attributes:
      hyper: kernel and noise hyperparameters, `GPParams` (logarithms).
      inducing: inducing inputs Z, `[m, d]`.
      q_mean: mean of q(v), `[m]`.
      q_tril_raw: `[m, m]`; its lower triangle, with softplus on the diagonal, is q(v)'s Cholesky factor.
    """

    hyper: GPParams
    inducing: jax.Array
    q_mean: jax.Array
    q_tril_raw: jax.Array


def q_tril(params: SVGPParams) -> jax.Array:
    """The Cholesky factor of q(v)'s covariance, `[m, m]`, with a positive diagonal."""
    raw = params.q_tril_raw
    return jnp.tril(raw, -1) + jnp.diag(jax.nn.softplus(jnp.diag(raw)))


def tril_raw_from(tril: jax.Array) -> jax.Array:
    """Inverse of `q_tril`: the raw parameter whose factor is the lower-triangular `tril` ([m, m])."""
    diag = jnp.diag(tril)
    return jnp.tril(tril, -1) + jnp.diag(diag + jnp.log(-jnp.expm1(-diag)))  # softplus^-1


def init_svgp_params(key: jax.Array, x_train: jax.Array, n_inducing: int, hyper: GPParams) -> SVGPParams:
    """Inducing inputs at `n_inducing` distinct training inputs drawn with `key`, and q(v) = N(0, I).

    Args:
      key: a JAX PRNG key.
      x_train: `[n, d]`.
      n_inducing: m, at most n.
      hyper: the starting `GPParams`.

    Raises:
      ValueError: `n_inducing` outside `[1, n]`.
    """
    n = x_train.shape[0]
    if not 1 <= n_inducing <= n:
        raise ValueError(f"n_inducing must be in [1, {n}] (the training set size), got {n_inducing}")
    index = jax.random.choice(key, n, (n_inducing,), replace=False)
    return SVGPParams(hyper, jnp.asarray(x_train)[index], jnp.zeros(n_inducing),
                      tril_raw_from(jnp.eye(n_inducing)))


def conditional(params: SVGPParams, x: jax.Array, kernel: str,
                jitter: float = 1e-6) -> tuple[jax.Array, jax.Array]:
    """The whitened projection and conditional variance of f(x) given v.

    Returns:
      `(proj [n, m], variance [n])`: `f(x) | v ~ N(proj @ v, variance)`.
    """
    k = kernel_fn(kernel, params.hyper)
    z = params.inducing
    chol = cholesky(k(z, z) + jitter * jnp.eye(z.shape[0]))
    a = jsl.solve_triangular(chol, k(z, x), lower=True)  # [m, n]
    k_diag = jnp.exp(params.hyper.log_variance) * jnp.ones(x.shape[0])  # stationary kernels
    return a.T, jnp.maximum(k_diag - jnp.sum(a**2, 0), 1e-10)


@ppl.meta_bayesian_net
def build_svgp(params: SVGPParams, x: jax.Array, kernel: str = "rbf", n_particles: int | None = None,
               jitter: float = 1e-6):
    """The whitened SVGP model: nodes `v` (`[S, m]`), `f` (`[S, n]`) and `y` (`[S, n]`).

    Args:
      params: `SVGPParams`; x: inputs `[n, d]`; kernel: "rbf", "matern32" or "matern52".
      n_particles: S, samples of v (None: no particle axis).
      jitter: added to K(Z, Z)'s diagonal.
    """
    bn = ppl.BayesianNet()
    m = params.inducing.shape[0]
    v = bn.normal("v", jnp.zeros(m), std=1.0, group_ndims=1, n_samples=n_particles)
    proj, variance = conditional(params, x, kernel, jitter)
    f = bn.normal("f", v @ proj.T, std=jnp.sqrt(variance), group_ndims=1)
    bn.normal("y", f, std=jnp.exp(0.5 * params.hyper.log_noise_variance), group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_svgp_variational(params: SVGPParams, x: jax.Array, kernel: str = "rbf",
                           n_particles: int | None = None, jitter: float = 1e-6):
    """q(v) = N(q_mean, q_tril q_tril^T) and f | v as in the prior: nodes `v` and `f`."""
    bn = ppl.BayesianNet()
    v = bn.multivariate_normal_cholesky("v", params.q_mean, q_tril(params), n_samples=n_particles)
    proj, variance = conditional(params, x, kernel, jitter)
    bn.normal("f", v @ proj.T, std=jnp.sqrt(variance), group_ndims=1)
    return bn


def svgp_elbo(key: jax.Array, params: SVGPParams, x: jax.Array, y: jax.Array, n_train: int,
              kernel: str = "rbf", n_particles: int = 10, jitter: float = 1e-6):
    """The SVGP ELBO of a minibatch, as an `inference.elbo` objective (particles on axis 0).

    Args:
      key: a JAX PRNG key for q's samples.
      params: `SVGPParams`; x: `[B, d]`; y: `[B]`; n_train: N, the training-set size (the
        likelihood is rescaled by N / B).
      kernel, jitter: as in `build_svgp`; n_particles: samples of q.

    Returns:
      An `EvidenceLowerBoundObjective`: `.value` estimates the ELBO of the whole training set (nats,
      to maximise); `.sgvb()` is the cost to minimise.
    """
    q = build_svgp_variational(params, x, kernel, n_particles, jitter).observe(key)
    model = build_svgp(params, x, kernel, n_particles, jitter)
    scale = n_train / x.shape[0]
    model.log_joint = lambda bn: bn["v"].log_prob + scale * bn["y"].log_prob
    latent = {"v": (q["v"].value, q["v"].log_prob), "f": (q["f"].value, jnp.zeros(()))}
    return inference.elbo(model, {"y": y}, latent=latent, axis=0)


def predict_svgp(params: SVGPParams, x: jax.Array, kernel: str = "rbf",
                 jitter: float = 1e-6) -> tuple[jax.Array, jax.Array]:
    """Predictive mean and variance of y at `x` (`[n, d]`) under q, in closed form.

    Returns:
      `(mean [n], variance [n])`, the variance including the observation noise.
    """
    proj, variance = conditional(params, x, kernel, jitter)
    spread = jnp.sum((proj @ q_tril(params)) ** 2, -1)
    return proj @ params.q_mean, variance + spread + jnp.exp(params.hyper.log_noise_variance)


@functools.lru_cache(maxsize=16)   # one loss per configuration, so later fits reuse fit's compiled program
def _svgp_loss(n_train: int, kernel, n_particles: int, jitter: float, learning_rate: float):
    def loss_fn(params, key, batch, state):
        xb, yb = batch
        lb = svgp_elbo(key, params, xb, yb, n_train, kernel, n_particles, jitter)
        return lb.sgvb(), (state, {"elbo": lb.value / n_train})

    return optax.adam(learning_rate), loss_fn


def fit_svgp(key: jax.Array, params: SVGPParams, x: np.ndarray, y: np.ndarray, kernel: str = "rbf", *,
             n_epochs: int = 100, batch_size: int = 5000, n_particles: int = 10,
             learning_rate: float = 0.01, jitter: float = 1e-6, progress_bar: bool = False,
             **fit_options) -> inference.TrainResult:
    """Fits an SVGP by Adam on the minibatch SGVB cost, through `inference.fit`.

    Minibatches are as in ZhuSuan's example: the training set is shuffled once per epoch and cut
    into `N // B` batches of `B = min(batch_size, N)` points; the `N mod B` points left over sit
    out that epoch (a different random subset each epoch), so every step has the same shape. With
    `B = N` every step is the whole training set. The loss function and optimiser are cached per
    configuration, so fits of data sets of equal size (e.g. the splits of a UCI benchmark) reuse
    `inference.fit`'s compiled program.

    Args:
      key: a JAX PRNG key.
      params: the starting `SVGPParams` (e.g. from `init_svgp_params`).
      x: `[N, d]`; y: `[N]` (standardised targets work best).
      kernel, jitter, n_particles: as in `svgp_elbo`.
      n_epochs: passes over the data (`N // B` Adam steps each); batch_size: B;
        learning_rate: Adam's step size.
      progress_bar: show `inference.fit`'s bar.
      **fit_options: passed to `inference.fit` (`checkpoint_dir`, `checkpoint_every`, `resume`,
        `callback_fn`, `eval_fn`, `mesh`, ...).

    Returns:
      An `inference.TrainResult`: `params` the fitted `SVGPParams`; `history["elbo"]` `[n_epochs]`
      the epoch's mean minibatch estimate of the ELBO per training point (nats), `history["cost"]`
      the SGVB cost.

    Raises:
      ValueError: `x` not `[N, d]` or `y` not `[N]`, or `n_epochs < 1`.

    Example:
      >>> params = init_svgp_params(key_init, x, 50, gp_exact.init_params(x.shape[1]))
      >>> result = fit_svgp(key_fit, params, x, y, n_epochs=100, batch_size=64)
      >>> mean, variance = predict_svgp(result.params, x_test)
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[1] != params.inducing.shape[1]:
        raise ValueError(f"x must be [N, {params.inducing.shape[1]}] and y [N], got {x.shape}, {y.shape}")
    if not isinstance(n_epochs, (int, np.integer)) or n_epochs < 1:
        raise ValueError(f"n_epochs must be an int >= 1, got {n_epochs!r}")
    optimizer, loss_fn = _svgp_loss(int(x.shape[0]), kernel, int(n_particles), float(jitter),
                                    float(learning_rate))
    return inference.fit(key, loss_fn, params, optimizer, (x, y), n_epochs=int(n_epochs),
                         batch_size=min(int(batch_size), x.shape[0]), progress_bar=progress_bar,
                         **fit_options)
