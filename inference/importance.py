"""Importance-sampling estimate of the log marginal likelihood."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from inference.objective import Latent, VariationalObjective, resolve_latent_arguments
from ppl import BayesianNet, MetaBayesianNet

__all__ = ["is_loglikelihood", "log_mean_exp"]


def log_mean_exp(x: jax.Array, axis: int) -> jax.Array:
    """log(mean(exp(x), axis)), computed stably (max-shifted)."""
    return jax.nn.logsumexp(x, axis=axis) - jnp.log(x.shape[axis])


class _ImportanceSampling(VariationalObjective):
    name = "is_loglikelihood"


def is_loglikelihood(
    meta_bn: MetaBayesianNet | Callable[[dict], jax.Array], observed: Mapping[str, Any],
    latent: Latent | None = None, axis: int | None = None, variational: BayesianNet | None = None, *,
    proposal: BayesianNet | None = None,
    enumerate: str | Sequence[str] | None = None) -> jax.Array:
    """Importance-sampling estimate of log p(x), with the proposal's samples as the importance samples.

    ZhuSuan's `zs.evaluation.is_loglikelihood(meta_bn, observed, latent=None, axis=None,
    proposal=None)`, with the proposal named `variational` as everywhere else here (`proposal=` is
    accepted as ZhuSuan's name).

    .. math::
      \\log \\hat p(x) = \\log \\frac{1}{K} \\sum_{k=1}^K \\frac{p(x, z_k)}{q(z_k)},
      \\quad z_k \\sim q

    A stochastic lower bound of log p(x) in expectation (Jensen), consistent as K grows; with K
    samples it equals the IWAE bound (Burda et al., 2015).

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`, or a log-joint function of a dict of every
        node's value (ZhuSuan's alternative).
      observed: `{name: value}` for the model's observed nodes.
      latent: `{name: (samples, log_q)}`, or give `variational`.
      axis: the axis of the K importance samples (None: K = 1, no such axis); checked against the
        latents' particle axis, so a proposal drawn without one is an error, not a log-mean-exp
        over data points.
      variational: a sampled `ppl.BayesianNet` whose unobserved nodes are the latents.
      proposal: ZhuSuan's name for `variational`.
      enumerate: names of finite discrete latents to sum out exactly instead of sampling (see
        `inference.enumeration`): each weight becomes `sum_y p(x, y, z_k) / q(z_k | y)`.

    Returns:
      The estimate in nats per data point, shape of `log_joint - log_q` without `axis`.

    Raises:
      See `inference.objective.VariationalObjective`.

    Example:
      >>> q = build_q(params, x, n_particles=1000).observe(key)
      >>> log_px = is_loglikelihood(model, {"x": x}, variational=q, axis=0)     # [n]

    References:
      Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
      <https://arxiv.org/abs/1509.00519>`_, 2015.
    """
    latent, axis, variational = resolve_latent_arguments("is_loglikelihood", latent, axis, variational,
                                                         proposal)
    objective = _ImportanceSampling(meta_bn, observed, latent, axis, variational, enumerate=enumerate)
    log_w = objective._marginal_log_weight()
    return log_w if axis is None else log_mean_exp(log_w, axis)
