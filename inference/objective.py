"""What every variational objective shares: condition the model on latent samples, check the
particle axis, and keep the `(log_joint, log_q)` terms the estimators work on.

The arguments follow ZhuSuan's `zs.variational` objectives: `(meta_bn, observed, latent=None,
axis=None, variational=None)`, where `meta_bn` is a `ppl.MetaBayesianNet` or, as in ZhuSuan, a
log-joint function `log_joint_fn(values) -> array` of a dict holding every node's value (observed
and latent).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from inference import enumeration, particles
from ppl import ArrayLike, BayesianNet, MetaBayesianNet
from ppl.bayesian_net import sum_log_probs
from ppl.checks import user_stacklevel

__all__ = ["VariationalObjective", "collect_latent", "resolve_latent_arguments", "sum_log_probs"]

Latent = Mapping[str, tuple[jax.Array, jax.Array]]


def collect_latent(variational: BayesianNet | None, latent: Latent | None,
                   allow_empty: bool = False) -> dict[str, tuple]:
    """The latent samples and their log q, from a sampled variational net or a dict.

    Args:
      variational: a `BayesianNet` whose sampled (unobserved) stochastic nodes are the latents.
      latent: `{name: (samples, log_q)}`, each `log_q` with `group_ndims` already applied.
      allow_empty: accept no latent at all (when every latent of the model is enumerated).

    Returns:
      `{name: (samples, log_q)}`.

    Raises:
      ValueError: both or neither of `variational` and `latent` are given, or no latent at all
        (unless `allow_empty`).
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
        if not latent and not allow_empty:
            raise ValueError("there are no latent variables: the variational net has no sampled node")
    if not isinstance(latent, Mapping):
        raise TypeError(f"`latent` must be a dict {{name: (samples, log_q)}}, got {type(latent).__name__}")
    if not latent and not allow_empty:
        raise ValueError("there are no latent variables: `latent` is empty (with every latent of the "
                         "model enumerated, `latent={}` is fine)")
    for name, pair in latent.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"latent[{name!r}] must be a pair (samples, log_q), got {type(pair).__name__}")
    return dict(latent)


def resolve_latent_arguments(what: str, latent, axis, variational, proposal=None):
    """`(latent, axis, variational)` in ZhuSuan's order, accepting the older orders and names.

    Before ZhuSuan's order was adopted the third positional argument was `variational`: a
    `BayesianNet` found in `latent` is taken as the variational net, with a `DeprecationWarning`.
    `proposal` is ZhuSuan's name for `variational` in `is_loglikelihood` (accepted silently).

    Raises:
      ValueError: the variational net is given twice.
    """
    if proposal is not None:
        if variational is not None:
            raise ValueError(f"{what}: give the variational net once, as `variational` (or "
                             "ZhuSuan's `proposal`), not both")
        variational = proposal
    if not isinstance(latent, BayesianNet):
        return latent, axis, variational
    warnings.warn(f"{what}: a BayesianNet as the third positional argument is the old argument "
                  "order; the arguments after `observed` are now ZhuSuan's (latent, axis, "
                  "variational): pass the net as variational=q", DeprecationWarning,
                  stacklevel=user_stacklevel())
    if isinstance(axis, Mapping) or (axis is None and _is_int(variational)):
        return axis, variational, latent           # all three were given in the old order
    if variational is not None:
        raise ValueError(f"{what}: the variational net is given twice (positionally and as "
                         "`variational`)")
    return None, axis, latent


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


class VariationalObjective(ArrayLike):
    """The model conditioned on observations and latent samples, with its `(log_joint, log_q)`.

    Subclasses (the ELBO, the importance weighted bound) stand for their value as an array (see
    `ppl.ArrayLike`): `jnp.mean(lb)`, `lb + 1` and `float(lb)` act on `lb.value`, as ZhuSuan's
    objectives were tensors of their value; `.tensor` is ZhuSuan's name for it.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`, or ZhuSuan's alternative: a function
        `log_joint_fn(values) -> array` of a dict of every node's value (observed and latent).
      observed: `{name: value}` for the observed nodes of the model.
      latent: `{name: (samples, log_q)}` when q is built outside the DSL (e.g. by a flow).
      axis: the particle axis of `log_joint - log_q` that the objective averages over, or None
        when there is a single sample and no such axis.
      variational: a sampled variational `ppl.BayesianNet`; its unobserved stochastic nodes are the
        latents. Exactly one of `variational` and `latent` is given.
      enumerate: a node name or a list of names of finite discrete latents to sum out exactly
        instead of sampling (see `inference.enumeration`): latents of the variational net (weighted
        by q) or of the model only (marginalised out of p).

    Attributes:
      meta_bn: the model (None when a log-joint function was given).
      variational: the variational net (None when `latent` was a dict).
      bn: the model `BayesianNet` conditioned on `observed` and the latent samples (for
        predictions); None when a log-joint function was given. Enumerated nodes hold the
        variational net's sample, or (model latents) their first value.
      log_joint: log p(x, z), shape `[*particles_and_batch]`; with enumerated variational latents
        `[K_1, ..., K_e, *particles_and_batch]` (one leading axis per such latent, in the order
        given), and with model latents enumerated, summed out of p.
      log_q: log q(z), summed over latents, broadcastable to `log_joint`.
      latent_nodes: the variational net's latent records (or None when `latent` was a dict).
      axis: the particle axis of `[*particles_and_batch]`, or None.
      enumerated: `{name: inference.enumeration.EnumeratedNode}` for the enumerated nodes (empty
        without `enumerate`).
      enumerated_log_q: log q of the enumerated variational latents, broadcastable to `log_joint`
        (zeros `[]` when there are none).

    Raises:
      ValueError: a latent that is also observed; a model node left neither observed nor given as
        a latent (the message names it); `axis` out of range of `log_joint - log_q`; `axis` that is
        not the latents' particle axis, `axis` given with no particle axis, or `axis=None` with
        particles; samples the model would broadcast (a `[5, 3, 1]` sample for a `[5, 3, 2]`
        node, a sample without the node's particle axis) or a `log_q` without its samples'
        particle axis (see `inference.particles`); an `enumerate` name that is observed, not a
        node, deterministic, continuous, of infinite support, grouped, or shared by several data
        points (see `inference.enumeration`).
      TypeError: `meta_bn` is neither a MetaBayesianNet nor a function (or is the decorated
        builder itself, not called), or `enumerate` is given with a log-joint function.
    """

    requires_axis = False
    name = "the variational objective"

    def __init__(self, meta_bn: MetaBayesianNet | Callable[[dict], jax.Array], observed: Mapping[str, Any],
                 latent: Latent | None = None, axis: int | None = None,
                 variational: BayesianNet | None = None, *, enumerate: str | Sequence[str] | None = None):
        latent, axis, variational = resolve_latent_arguments(self.name, latent, axis, variational)
        self._log_joint_of = _log_joint_function(meta_bn)
        self.meta_bn = meta_bn if isinstance(meta_bn, MetaBayesianNet) else None
        self.variational = variational
        names = () if enumerate is None else enumeration.check_names(self.name, enumerate)
        self.latent = collect_latent(variational, latent, allow_empty=bool(names))
        self.observed = dict(observed)
        both = sorted(set(self.latent) & set(self.observed))
        if both:
            raise ValueError(f"{both} are given both as observed and as latent")
        self.latent_nodes = None if variational is None else variational.latent_nodes()
        plan = None if not names else enumeration.Enumeration(
            self.name, names, meta_bn, self.observed, self.latent, variational)
        condition = self._log_joint_of if plan is None else plan.probe(self._log_joint_of)
        self.bn, self.log_joint = condition(self.observed, self._latent_values())
        self.log_q = sum_log_probs({name: pair[1] for name, pair in self.latent.items()}, what="log_q")
        shape = self._log_weight_shape()
        # an enumerated variational latent takes each value for every particle: its samples need
        # no particle axis, and give none
        sampled = {name: pair for name, pair in self.latent.items()
                   if plan is None or name not in plan.variational_names}
        if self.bn is not None:
            particles.check_latent_shapes(self.name, self.bn, sampled)
        self.axis, particle_axes = self._check_axis(axis, shape, sampled)
        self._shape = shape
        self.enumerated: dict[str, Any] = {}
        self.enumerated_log_q = jnp.zeros(())
        if plan is not None:
            self._enumerate(plan, particle_axes)

    def _enumerate(self, plan: enumeration.Enumeration, particle_axes: list[int]) -> None:
        plan.check(self.bn, self._shape, particle_axes)
        self.log_joint, self.log_q, self.enumerated_log_q = plan.evaluate(
            self._log_joint_of, self.observed, self.latent, len(self._shape))
        self.enumerated = plan.nodes()
        if plan.model_names:      # later conditionings (dreg) sum the model latents out too
            condition = self._log_joint_of
            self._log_joint_of = lambda observed, values: (
                None, plan.marginal_log_joint(condition, observed, values))

    @property
    def _n_enumerated_axes(self) -> int:
        return sum(node.is_variational for node in self.enumerated.values())

    def _latent_values(self, stop_gradient: bool = False) -> dict[str, jax.Array]:
        values = {name: pair[0] for name, pair in self.latent.items()}
        return jax.lax.stop_gradient(values) if stop_gradient else values

    def _log_weight_shape(self) -> tuple[int, ...]:
        try:
            return tuple(jnp.broadcast_shapes(jnp.shape(self.log_joint), jnp.shape(self.log_q)))
        except ValueError:
            shapes = ", ".join(f"{name!r} {jnp.shape(pair[1])}" for name, pair in self.latent.items())
            raise ValueError(f"{self.name}: log_joint of shape {jnp.shape(self.log_joint)} and log_q of "
                             f"shape {jnp.shape(self.log_q)} (latents {shapes}) do not broadcast "
                             "together") from None

    def _check_axis(self, axis, shape, latent) -> tuple[int | None, list[int]]:
        ndim = len(shape)
        if axis is not None and (not _is_int(axis) or not -ndim <= axis < ndim):
            raise ValueError(f"axis={axis} is out of range for log_joint - log_q of rank {ndim} "
                             f"(log_joint shape {jnp.shape(self.log_joint)}, log_q shape "
                             f"{jnp.shape(self.log_q)})")
        axes, is_known = particles.find_particle_axes(self.bn, latent, self.latent_nodes, shape)
        particles.check_axis(self.name, axis, axes, is_known, shape, self.requires_axis)
        particles.check_log_q_axes(self.name, latent, axes, shape)
        return None if axis is None else int(axis), [particle.axis for particle in axes]

    @property
    def log_weight(self) -> jax.Array:
        """log p(x, z) - log q(z), the per-sample log importance weight (with the leading axes of
        the enumerated variational latents, if any)."""
        return self.log_joint - self.log_q

    def _marginal_log_weight(self) -> jax.Array:
        """log p(x, z) - log q(z) with the enumerated variational latents summed out (q(y) cancels),
        shape `[*particles_and_batch]` (see `inference.enumeration.marginal`)."""
        return enumeration.marginal(self.log_weight, self.enumerated_log_q, self._n_enumerated_axes)

    @property
    def n_particles(self) -> int | None:
        """The number of particles along `axis` (None without a particle axis)."""
        return None if self.axis is None else int(self._shape[self.axis])

    @property
    def value(self) -> jax.Array:
        """The objective's value; see the subclasses."""
        raise NotImplementedError(f"{type(self).__name__} has no value; use an objective such as "
                                  "inference.elbo or inference.importance_weighted_objective")

    def _as_array(self) -> jax.Array:
        return self.value

    def _mean(self, x: jax.Array) -> jax.Array:
        return x if self.axis is None else jnp.mean(x, axis=self.axis)

    def _require_reparameterized(self, estimator: str) -> None:
        for name, node in (self.latent_nodes or {}).items():
            if not node.is_reparameterized and name not in self.enumerated:
                raise ValueError(f"{estimator} needs reparameterised latents, but latent {name!r} "
                                 f"({type(node.distribution).__name__}) is not; use a score-function "
                                 "estimator (reinforce / vimco) instead")

    def _require_score_function(self, estimator: str) -> None:
        for name, node in (self.latent_nodes or {}).items():
            if node.is_reparameterized and name not in self.enumerated:
                raise ValueError(f"{estimator} is a score-function estimator, but latent {name!r} "
                                 f"({type(node.distribution).__name__}) is reparameterised; build it "
                                 "with is_reparameterized=False")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(latent={sorted(self.latent)}, axis={self.axis}, "
                f"log_weight shape={tuple(jnp.shape(self.log_weight))})")


def _log_joint_function(meta_bn):
    """`(observed, latent_values) -> (conditioned bn or None, log_joint)` for either kind of model."""
    if isinstance(meta_bn, MetaBayesianNet):
        def condition(observed, values):
            try:
                bn = meta_bn.observe(**observed, **values)
            except ValueError as error:   # e.g. a model node neither observed nor given as a latent
                raise ValueError(f"conditioning the model {meta_bn.name!r} on observed {sorted(observed)} "
                                 f"and latent {sorted(values)}: {error}") from None
            return bn, bn.log_joint()
        return condition
    if getattr(meta_bn, "is_meta_bayesian_net_builder", False):
        raise TypeError(f"`meta_bn` is the decorated builder {meta_bn.__name__!r} itself; call it with "
                        f"its arguments ({meta_bn.__name__}(...)) to get the ppl.MetaBayesianNet")
    if not callable(meta_bn):
        raise TypeError(f"`meta_bn` must be a ppl.MetaBayesianNet or a log-joint function of a dict of "
                        f"node values, got {type(meta_bn).__name__}")

    def call(observed, values):
        log_joint = meta_bn({**observed, **values})
        if not isinstance(log_joint, (jax.Array, np.ndarray, float, ArrayLike)):
            raise TypeError(f"the log-joint function {getattr(meta_bn, '__name__', meta_bn)!r} must "
                            f"return an array, got {type(log_joint).__name__}")
        return None, jnp.asarray(log_joint)
    return call
