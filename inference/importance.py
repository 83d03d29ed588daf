"""Importance-sampling estimate of the log marginal likelihood."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from inference.objective import VariationalObjective

__all__ = ["is_loglikelihood", "log_mean_exp"]


def log_mean_exp(x: jax.Array, axis: int) -> jax.Array:
    """log(mean(exp(x), axis)), computed stably (max-shifted)."""
    return jax.nn.logsumexp(x, axis=axis) - jnp.log(x.shape[axis])


def is_loglikelihood(meta_bn, observed, proposal=None, latent=None, axis=None) -> jax.Array:
    """Importance-sampling estimate of log p(x), with the proposal's samples as the importance samples.

    .. math::
      \\log \\hat p(x) = \\log \\frac{1}{K} \\sum_{k=1}^K \\frac{p(x, z_k)}{q(z_k)},
      \\quad z_k \\sim q

    A stochastic lower bound of log p(x) in expectation (Jensen), consistent as K grows; with K
    samples it equals the IWAE bound (Burda et al., 2015).

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the model's observed nodes.
      proposal: a sampled `ppl.BayesianNet` whose unobserved nodes are the latents.
      latent: or `{name: (samples, log_q)}`.
      axis: the axis of the K importance samples (None: K = 1, no such axis).

    Returns:
      The estimate in nats per data point, shape of `log_joint - log_q` without `axis`.

    Raises:
      See `inference.objective.VariationalObjective`.

    References:
      Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
      <https://arxiv.org/abs/1509.00519>`_, 2015.
    """
    objective = VariationalObjective(meta_bn, observed, variational=proposal, latent=latent, axis=axis)
    log_w = objective.log_weight
    return log_w if axis is None else log_mean_exp(log_w, axis)
