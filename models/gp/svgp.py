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


def fit_svgp(key: jax.Array, params: SVGPParams, x: np.ndarray, y: np.ndarray, kernel: str = "rbf",
             n_steps: int = 5000, batch_size: int = 5000, n_particles: int = 10,
             learning_rate: float = 0.01, jitter: float = 1e-6) -> tuple[SVGPParams, jax.Array]:
    """Fits an SVGP by Adam on the minibatch SGVB cost (one jit, one `lax.scan`).

    Minibatches are as in ZhuSuan's example: the training set is shuffled once per epoch and cut
    into `N // B` batches of `B = min(batch_size, N)` points; the `N mod B` points left over are
    dropped from that epoch (a different random subset each epoch), so every step has the same
    shape and nothing recompiles. The shuffle is one permutation per epoch, not one per step.
    The compiled program depends only on the shapes and the static arguments, so fits of data
    sets of equal size (e.g. the splits of a UCI benchmark) reuse it.

    Args:
      key: a JAX PRNG key.
      params: the starting `SVGPParams` (e.g. from `init_svgp_params`).
      x: `[N, d]`; y: `[N]` (standardised targets work best).
      kernel, jitter, n_particles: as in `svgp_elbo`.
      n_steps: optimiser steps (`N // B` per epoch); batch_size: B; learning_rate: Adam's step size.

    Returns:
      `(params, elbo_trace [n_steps])`, the trace the per-point ELBO estimate (nats).

    Raises:
      ValueError: `x` not `[N, d]` or `y` not `[N]`, or `n_steps < 1`.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[1] != params.inducing.shape[1]:
        raise ValueError(f"x must be [N, {params.inducing.shape[1]}] and y [N], got {x.shape}, {y.shape}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    return _fit_svgp(key, params, x, y, kernel=kernel, n_steps=n_steps, batch=min(batch_size, x.shape[0]),
                     n_particles=n_particles, learning_rate=learning_rate, jitter=jitter)


@functools.partial(jax.jit, static_argnames=("kernel", "n_steps", "batch", "n_particles", "learning_rate",
                                             "jitter"))
def _fit_svgp(key, params, x, y, *, kernel, n_steps, batch, n_particles, learning_rate, jitter):
    n = x.shape[0]
    optimizer = optax.adam(learning_rate)
    steps_per_epoch = n // batch
    n_epochs = -(-n_steps // steps_per_epoch)

    def loss_fn(p, key_q, xb, yb):
        lb = svgp_elbo(key_q, p, xb, yb, n, kernel, n_particles, jitter)
        return lb.sgvb(), lb.value / n

    def step(carry, inputs):
        p, opt_state = carry
        index, key_q, is_live = inputs
        (_, value), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, key_q, x[index], y[index])
        updates, new_opt_state = optimizer.update(grads, opt_state, p)
        # steps past n_steps in the last epoch leave the parameters as they are
        new = (optax.apply_updates(p, updates), new_opt_state)
        carry = jax.tree_util.tree_map(lambda a, b: jnp.where(is_live, a, b), new, carry)
        return carry, value

    def epoch(carry, inputs):
        key_epoch, epoch_index = inputs
        key_perm, key_q = jax.random.split(key_epoch)
        order = jax.random.permutation(key_perm, n) if steps_per_epoch > 1 or batch < n else jnp.arange(n)
        batches = order[:steps_per_epoch * batch].reshape(steps_per_epoch, batch)
        is_live = epoch_index * steps_per_epoch + jnp.arange(steps_per_epoch) < n_steps
        return jax.lax.scan(step, carry, (batches, jax.random.split(key_q, steps_per_epoch), is_live))

    inputs = (jax.random.split(key, n_epochs), jnp.arange(n_epochs))
    (params, _), trace = jax.lax.scan(epoch, (params, optimizer.init(params)), inputs)
    return params, trace.reshape(-1)[:n_steps]
