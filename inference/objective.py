"""What every variational objective shares: condition the model on latent samples, and keep the
`(log_joint, log_q)` terms the estimators work on."""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from ppl import BayesianNet, MetaBayesianNet

__all__ = ["VariationalObjective", "collect_latent", "sum_log_probs"]

Latent = Mapping[str, tuple[jax.Array, jax.Array]]


def sum_log_probs(terms) -> jax.Array:
    """Sums log-density arrays with explicit right-aligned broadcasting."""
    terms = list(terms)
    if not terms:
        return jnp.zeros(())
    shape = jnp.broadcast_shapes(*(jnp.shape(t) for t in terms))
    return functools.reduce(jnp.add, [jnp.broadcast_to(t, shape) for t in terms])


def collect_latent(variational: BayesianNet | None, latent: Latent | None) -> dict[str, tuple]:
    """The latent samples and their log q, from a sampled variational net or a dict.

    Args:
      variational: a `BayesianNet` whose sampled (unobserved) stochastic nodes are the latents.
      latent: `{name: (samples, log_q)}`, each `log_q` with `group_ndims` already applied.

    Returns:
      `{name: (samples, log_q)}`.

    Raises:
      ValueError: both or neither of `variational` and `latent` are given, or no latent at all.
      TypeError: `variational` is not a `BayesianNet`, `latent` is not a dict, or an entry is not a pair.
    """
    if (variational is None) == (latent is None):
        given = "both" if variational is not None else "neither"
        raise ValueError(f"give exactly one of `variational` (a sampled BayesianNet) or `latent` "
                         f"({{name: (samples, log_q)}}), got {given}")
    if variational is not None:
        if not isinstance(variational, BayesianNet):
            raise TypeError(f"`variational` must be a sampled ppl.BayesianNet (call .observe(key) "
                            f"on the meta net), got {type(variational).__name__}")
        latent = {name: (node.value, node.log_prob) for name, node in variational.latent_nodes().items()}
        if not latent:
            raise ValueError("there are no latent variables: the variational net has no sampled node")
    if not isinstance(latent, Mapping):
        raise TypeError(f"`latent` must be a dict {{name: (samples, log_q)}}, got {type(latent).__name__}")
    if not latent:
        raise ValueError("there are no latent variables: `latent` is empty")
    for name, pair in latent.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"latent[{name!r}] must be a pair (samples, log_q), got {type(pair).__name__}")
    return dict(latent)


class VariationalObjective:
    """The model conditioned on observations and latent samples, with its `(log_joint, log_q)`.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the observed nodes of the model.
      variational: a sampled variational `ppl.BayesianNet`; its unobserved stochastic nodes are the
        latents. Exactly one of `variational` and `latent` is given.
      latent: `{name: (samples, log_q)}` when q is built outside the DSL (e.g. by a flow).
      axis: the particle axis of `log_joint - log_q` that the objective averages over, or None
        when there is a single sample and no such axis.

    Attributes:
      bn: the model `BayesianNet` conditioned on `observed` and the latent samples (for predictions).
      log_joint: log p(x, z), shape `[*particles_and_batch]`.
      log_q: log q(z), summed over latents, broadcastable to `log_joint`.
      latent_nodes: the variational net's latent records (or None when `latent` was a dict).

    Raises:
      ValueError: a latent that is also observed; a model node left neither observed nor given as
        a latent (the message names it); `axis` out of range of `log_joint - log_q`.
    """

    def __init__(self, meta_bn: MetaBayesianNet, observed: Mapping[str, Any],
                 variational: BayesianNet | None = None, latent: Latent | None = None,
                 axis: int | None = None):
        if not isinstance(meta_bn, MetaBayesianNet):
            raise TypeError(f"`meta_bn` must be a ppl.MetaBayesianNet, got {type(meta_bn).__name__}")
        latent = collect_latent(variational, latent)
        both = sorted(set(latent) & set(observed))
        if both:
            raise ValueError(f"{both} are given both as observed and as latent")
        self.latent_nodes = None if variational is None else variational.latent_nodes()
        try:
            self.bn = meta_bn.observe(**observed, **{name: pair[0] for name, pair in latent.items()})
        except ValueError as error:   # e.g. a model node neither observed nor given as a latent
            raise ValueError(f"conditioning the model {meta_bn.name!r} on observed {sorted(observed)} "
                             f"and latent {sorted(latent)}: {error}") from None
        self.log_joint = self.bn.log_joint()
        self.log_q = sum_log_probs(pair[1] for pair in latent.values())
        ndim = len(jnp.broadcast_shapes(jnp.shape(self.log_joint), jnp.shape(self.log_q)))
        if axis is not None and not -ndim <= axis < ndim:
            raise ValueError(f"axis={axis} is out of range for log_joint - log_q of rank {ndim} "
                             f"(log_joint shape {jnp.shape(self.log_joint)}, log_q shape "
                             f"{jnp.shape(self.log_q)})")
        self.axis = axis

    @property
    def log_weight(self) -> jax.Array:
        """log p(x, z) - log q(z), the per-sample log importance weight."""
        return self.log_joint - self.log_q

    def _mean(self, x: jax.Array) -> jax.Array:
        return x if self.axis is None else jnp.mean(x, axis=self.axis)

    def _require_reparameterized(self, estimator: str) -> None:
        for name, node in (self.latent_nodes or {}).items():
            if not node.is_reparameterized:
                raise ValueError(f"{estimator} needs reparameterised latents, but latent {name!r} "
                                 f"({type(node.distribution).__name__}) is not; use a score-function "
                                 "estimator (reinforce / vimco) instead")
