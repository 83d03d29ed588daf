"""The inclusive KL objective KL(p || q) and its importance-sampling (RWS) estimator."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from inference import enumeration, estimators
from inference.objective import Latent, VariationalObjective
from ppl import BayesianNet, MetaBayesianNet

__all__ = ["InclusiveKLObjective", "klpq"]


class InclusiveKLObjective(VariationalObjective):
    """The inclusive KL divergence KL(p(z | x) || q(z)), for fitting q (not the model).

    It cannot be evaluated (it needs the true posterior), only optimised through `importance()`;
    so, as in ZhuSuan, it does not stand for an array: `.value`, `.tensor` and conversions such as
    `jnp.mean(objective)` raise. Paired with the importance weighted objective for the model, this
    is reweighted wake-sleep. See `VariationalObjective` for the arguments and attributes.

    References:
      Bornschein and Bengio, `Reweighted Wake-Sleep <https://arxiv.org/abs/1406.2751>`_, 2015.
    """

    name = "klpq"

    @property
    def value(self) -> jax.Array:
        """Not available: the inclusive KL can only be optimised (raises NotImplementedError)."""
        raise NotImplementedError("the inclusive KL objective (klpq) can only be optimised, not "
                                  "evaluated: minimise .importance() for the variational parameters")

    def importance(self) -> jax.Array:
        """Self-normalised importance-sampling surrogate cost for q (RWS wake-phase q update).

        See `inference.estimators.importance`. Warns (UserWarning) with a single sample
        (`axis=None`): the self-normalised weight is then 1 and the update just raises log q of
        the sample, a heavily biased estimate. With enumerated latents of the variational net,
        every (value, particle) pair is a weighted sample, with weight p(x, y, z) / q(z | y).

        Returns:
          The cost per data point, `axis` reduced; minimise it for the variational parameters.

        Raises:
          ValueError: a reparameterised latent (build it with `is_reparameterized=False`).
        """
        self._require_score_function("importance")
        log_joint, log_q, axis = self.log_joint + self.enumerated_log_q, self.log_q, self.axis
        n_axes = self._n_enumerated_axes
        if n_axes:      # every (value, particle) pair is a sample
            shape = jnp.broadcast_shapes(jnp.shape(log_joint), jnp.shape(log_q))
            log_q, _ = enumeration.merge_axes(jnp.broadcast_to(log_q, shape), n_axes, axis, len(self._shape))
            log_joint, axis = enumeration.merge_axes(jnp.broadcast_to(log_joint, shape), n_axes, axis,
                                                     len(self._shape))
        if axis is None or jnp.shape(log_joint)[axis] == 1:
            warnings.warn("klpq(...).importance() uses self-normalised importance sampling, which is "
                          "heavily biased with a single sample; use several samples along `axis`",
                          stacklevel=2)
        return estimators.importance(log_joint, log_q, axis)

    def rws(self) -> jax.Array:
        """Deprecated alias of `importance` (ZhuSuan's older name); warns."""
        warnings.warn("klpq(...).rws() is ZhuSuan's older name; use .importance()", DeprecationWarning,
                      stacklevel=2)
        return self.importance()


def klpq(
    meta_bn: MetaBayesianNet | Callable[[dict], jax.Array], observed: Mapping[str, Any],
    latent: Latent | None = None, axis: int | None = None, variational: BayesianNet | None = None, *,
    enumerate: str | Sequence[str] | None = None) -> InclusiveKLObjective:
    """The inclusive KL objective of `meta_bn` given `observed` (ZhuSuan's `klpq`).

    ZhuSuan's `zs.variational.klpq(meta_bn, observed, latent=None, axis=None, variational=None)`.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`, or a log-joint function of a dict of every
        node's value (ZhuSuan's alternative).
      observed: `{name: value}` for the model's observed nodes.
      latent: `{name: (samples, log_q)}`, or give `variational`.
      axis: the axis of the samples (None: a single sample, warned against); checked against the
        latents' particle axis.
      variational: a sampled variational `ppl.BayesianNet` (samples along `axis`).
      enumerate: names of finite discrete latents to sum out exactly (see `inference.enumeration`).

    Returns:
      An `InclusiveKLObjective` with `.importance()`.

    Raises:
      See `inference.objective.VariationalObjective`.

    Example:
      >>> q = build_q(params, x, n_particles=10).observe(key)
      >>> q_cost = jnp.mean(klpq(model, {"x": x}, variational=q, axis=0).importance())
    """
    return InclusiveKLObjective(meta_bn, observed, latent, axis, variational, enumerate=enumerate)
