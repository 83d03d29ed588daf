"""Exact enumeration of finite discrete latents in the variational objectives.

`elbo(model, {"x": x}, variational=q, axis=0, enumerate=["y"])` sums the discrete node `y` out
exactly, in parallel over its support, instead of sampling it (so does every objective:
`importance_weighted_objective`, `klpq`, `is_loglikelihood`). Two kinds of node can be enumerated:

* **a latent of the variational net**, q(y | x) known. The variational net is rebuilt with y set to
  each value of its support (`BayesianNet.rebuild` inside `ppl.substitute`), so the nodes drawn
  after y, such as z ~ q(z | x, y), are drawn for each value, and the ELBO is

  .. math::
    \\sum_y q(y \\mid x)\\, \\mathbb{E}_{q(z \\mid x, y)}
    [\\log p(x, y, z) - \\log q(y \\mid x) - \\log q(z \\mid x, y)]

  (the unlabelled bound of Kingma et al.'s M2). Its gradient reaches q(y | x) exactly.
* **a latent of the model only**: summed out of p, log p(x, z) = log sum_y p(x, y, z), and the
  objective sees a model without y.

Both compose with SGVB on the continuous latents and with REINFORCE (ELBO) or VIMCO (importance
weighted objective, model latents) on the other discrete ones. Estimators: the ELBO's `sgvb()` is
the pathwise gradient, exact in y; `reinforce()` makes a score-function estimate for each value of y
on that value's samples and weights them by q(y) (`weighted_reinforce`). In the importance weighted
bound each particle's weight is `sum_y p(x, y, z_y) / q(z_y | y)`, so q(y) cancels: enumerating a
variational latent there equals enumerating it in the model; `vimco()` and `dreg()` need it in the
model (the values share their random numbers, so a particle's density across them is unknown).
`klpq().importance()` weighs every (value, particle) pair.

Example (M2's bounds; the builders are written once, for labelled data):
  >>> q_l = build_q(params, x_l, n_particles=1).observe(key_l, y=y_l)        # y observed
  >>> labelled = elbo(build_gen(params, n_l, n_particles=1), {"x": x_l, "y": y_l}, variational=q_l,
  ...                 axis=0)
  >>> q_u = build_q(params, x_u, n_particles=1).observe(key_u)               # y summed out
  >>> unlabelled = elbo(build_gen(params, n_u, n_particles=1), {"x": x_u}, variational=q_u, axis=0,
  ...                   enumerate="y")
  >>> classification = -q_l["y"].log_prob                                    # log q(y | x) of the labels

**Vectorised.** The builders run once, under `jax.vmap` over the support's index: inside a builder
every node has its usual shape (a one-hot y is `[n, 10]`, a `[P, n, d]` z stays `[P, n, d]`), so the
model and the variational net are written as for an observed y. Several enumerated nodes cost
the product of their support sizes in evaluations, all in one vectorised program.

**Shapes.** `axis`, `value` and every estimator's cost keep the shapes they have without
enumeration: log-weights `[*particles_and_batch]`, costs `[*batch]`. A model latent leaves no axis.
Each enumerated variational latent puts one leading axis, of its support size K, on `log_joint`,
`log_q`, `log_weight` and `enumerated_log_q`: `[K_1, ..., K_e, *particles_and_batch]`, in the order
of `enumerate`, so the particle axis `axis` (>= 0) of `particles_and_batch` sits at `axis + e` in
them. `enumerated[name].values` lists the support, `[K, *event_shape]`, in the order of that axis.

**Random numbers.** The variational net is rebuilt with its own key for every value: nodes drawn
before y are identical across values (so q(y | ...) is normalised over the values), nodes drawn after
y use the same noise for each value (common random numbers); each value's term stays unbiased.

**Checked** (errors name the node): a node that is observed, deterministic, absent, continuous or has
an infinite support (Poisson); a node whose log-probability sums several enumerated variables
(`group_ndims` over axes of size > 1: that needs K^m joint values); a node shared by several data
points (a global y: log sum_y prod_n p(x_n, y) does not split into one term per data point).

References:
  Kingma, Rezende, Mohamed and Welling, `Semi-Supervised Learning with Deep Generative Models
  <https://arxiv.org/abs/1406.5298>`_, 2014.
  Obermeyer, Bingham, Jankowiak, Pradhan, Chen, Rush and Goodman, `Tensor Variable Elimination for
  Plated Factor Graphs <https://arxiv.org/abs/1902.03210>`_, 2019 (Pyro's parallel enumeration).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from inference import estimators
from ppl import BayesianNet, MetaBayesianNet, StochasticTensor
from ppl.bayesian_net import sum_log_probs
from ppl.distributions import support_values
from ppl.substitution import NodeSite, substitute

__all__ = ["EnumeratedNode", "Enumeration", "check_names", "expectation", "marginal", "merge_axes",
           "weighted_reinforce"]


class EnumeratedNode(NamedTuple):
    """A node an objective sums out exactly.

    Attributes:
      name: the node's name.
      values: its support in order, shape `[K, *event_shape]`.
      is_variational: True for a latent of the variational net (weighted by q(y)), False for a
        latent of the model only (summed out of p).
      axis: its leading axis in `log_joint`, `log_q`, `log_weight` (variational latents); None for
        model latents, which leave no axis.
    """

    name: str
    values: jax.Array
    is_variational: bool
    axis: int | None


class Enumeration:
    """The enumerated nodes of one objective, and the vectorised passes that sum them out.

    Used by `inference.objective.VariationalObjective`; see the module docstring.

    Args:
      what: the objective's name, for messages.
      names: the nodes to enumerate.
      meta_bn: the model.
      observed: the model's observations.
      latent: `{name: (samples, log_q)}` of the variational net (with the variational latents to
        enumerate among them).
      variational: the sampled variational net, or None (`latent=` given as a dict).

    Raises:
      TypeError: `names` is not a name or a sequence of names; `meta_bn` is a log-joint function.
      ValueError: a repeated name, an observed node, or a latent given in a `latent=` dict.
    """

    def __init__(self, what: str, names: str | Sequence[str], meta_bn: Any, observed: Mapping[str, Any],
                 latent: Mapping[str, tuple], variational: BayesianNet | None) -> None:
        names = check_names(what, names)
        if not isinstance(meta_bn, MetaBayesianNet):
            raise TypeError(f"{what}: enumerate={list(names)} needs the model as a ppl.MetaBayesianNet "
                            f"(it is rebuilt at each value), got {type(meta_bn).__name__}")
        for name in names:
            if name in observed:
                raise ValueError(f"{what}: node {name!r} is observed and cannot be enumerated; only "
                                 "latent nodes are summed out")
            if name in latent and variational is None:
                raise ValueError(f"{what}: {name!r} is given in `latent=` as samples; to enumerate a "
                                 "latent of the variational net, pass the net (variational=q) so that "
                                 f"it can be rebuilt at each value of {name!r}")
        self.what = what
        self.variational = variational
        self.variational_names = tuple(name for name in names if name in latent)
        self.model_names = tuple(name for name in names if name not in latent)
        self.supports: dict[str, jax.Array] = {}
        for name in self.variational_names:
            assert variational is not None  # raised above otherwise
            node = variational.latent_nodes()[name]
            self.supports[name] = support_values(f"{what}: node {name!r} of the variational net",
                                                 node.distribution, node.value.dtype)

    # ------------------------------------------------------------------ the first (probe) pass
    def probe(self, condition: Callable) -> Callable:
        """`condition` with each model latent to enumerate at its first value (recording supports)."""
        def probed(observed, values):
            with substitute(self._probe_value):
                return condition(observed, values)
        return probed

    def _probe_value(self, site: NodeSite):
        if site.name not in self.model_names or site.distribution is None or site.is_observed:
            return None
        values = support_values(f"{self.what}: node {site.name!r}", site.distribution, site.dtype)
        self.supports[site.name] = values
        return jnp.broadcast_to(values[0], site.shape)

    def check(self, bn: BayesianNet, log_weight_shape: tuple[int, ...], particle_axes: Sequence[int]) -> None:
        """Raises unless every enumerated node is one discrete latent variable per cell.

        Args:
          bn: the model conditioned in the probe pass.
          log_weight_shape: the shape of the log-weights without enumeration.
          particle_axes: the particle axes of those log-weights (the others index data).
        """
        for name in self.variational_names + self.model_names:
            if name not in bn:
                raise ValueError(f"{self.what}: enumerate names {name!r}, but the model has no such node; "
                                 f"its nodes are {list(bn)}")
            node = bn[name]
            if not isinstance(node, StochasticTensor):
                raise ValueError(f"{self.what}: node {name!r} is deterministic and cannot be enumerated")
            if name not in self.supports:
                raise ValueError(f"{self.what}: node {name!r} was not left to be enumerated (the builder "
                                 "observed it itself)")
            nodes = [node]
            if name in self.variational_names:
                assert self.variational is not None  # __init__ raised otherwise
                nodes.append(self.variational.latent_nodes()[name])
            for each in nodes:
                _check_single_variable(self.what, each)
            _check_not_shared(self.what, node, log_weight_shape, particle_axes)

    def nodes(self) -> dict[str, EnumeratedNode]:
        """The enumerated nodes by name, variational latents first (in the order of their axes)."""
        nodes = {name: EnumeratedNode(name, self.supports[name], True, axis)
                 for axis, name in enumerate(self.variational_names)}
        nodes.update({name: EnumeratedNode(name, self.supports[name], False, None)
                      for name in self.model_names})
        return nodes

    # ------------------------------------------------------------------ the enumerated pass
    def evaluate(self, condition: Callable, observed: Mapping[str, Any], latent: Mapping[str, tuple],
                 rank: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        """log p, log q and log q(enumerated) at every value of the variational latents.

        Args:
          condition: `(observed, values) -> (bn, log_joint)` for the model.
          observed: the model's observations.
          latent: `{name: (samples, log_q)}` from the variational net's first pass.
          rank: the rank of the log-weights without enumeration.

        Returns:
          `(log_joint, log_q, enumerated_log_q)`, each `[K_1, ..., K_e, *(rank axes)]` (size-1 axes
          where a term does not vary): log p with the model latents summed out, log q of every
          latent (enumerated ones included), and log q of the enumerated variational latents.
        """
        names = self.variational_names

        def branch(indices):
            if names:
                with substitute(self._branch_value(dict(zip(names, indices, strict=True)))):
                    q_bn = self.variational.rebuild()
                pairs = self._rebuilt_latent(q_bn, latent)
                values = {name: q_bn[name].value for name in names}
                enumerated_log_q = sum_log_probs({name: q_bn[name].log_prob for name in names}, what="log_q")
            else:
                pairs, values, enumerated_log_q = latent, {}, jnp.zeros(())
            values.update({name: pair[0] for name, pair in pairs.items()})
            log_q = sum_log_probs({name: pair[1] for name, pair in pairs.items()}, what="log_q")
            log_joint = self.marginal_log_joint(condition, observed, values)
            return tuple(_expand(x, rank) for x in (log_joint, log_q + enumerated_log_q, enumerated_log_q))

        log_joint, log_q, enumerated_log_q = _grid(branch, [len(self.supports[name]) for name in names])
        return log_joint, log_q, enumerated_log_q if names else jnp.zeros(())

    def marginal_log_joint(self, condition: Callable, observed: Mapping[str, Any],
                           values: Mapping[str, jax.Array]) -> jax.Array:
        """log sum over the model latents to enumerate of p(x, ...), the other latents at `values`."""
        names = self.model_names
        if not names:
            return condition(observed, values)[1]

        def branch(indices):
            with substitute(self._branch_value(dict(zip(names, indices, strict=True)))):
                return condition(observed, values)[1]

        log_joint = _grid(branch, [len(self.supports[name]) for name in names])
        return jax.nn.logsumexp(log_joint, axis=tuple(range(len(names))))

    def _branch_value(self, indices: Mapping[str, jax.Array]):
        def value(site: NodeSite):
            if site.name not in indices or site.distribution is None:
                return None
            return jnp.broadcast_to(self.supports[site.name][indices[site.name]], site.shape)
        return value

    def _rebuilt_latent(self, q_bn, latent: Mapping[str, tuple]) -> dict[str, tuple]:
        pairs = {name: (node.value, node.log_prob) for name, node in q_bn.latent_nodes().items()
                 if name not in self.variational_names}
        expected = sorted(set(latent) - set(self.variational_names))
        if sorted(pairs) != expected:
            raise ValueError(f"{self.what}: rebuilt at each value of {list(self.variational_names)}, the "
                             f"variational net has latents {sorted(pairs)}, but it had {expected}")
        return pairs


def expectation(log_weight: jax.Array, enumerated_log_q: jax.Array, n_axes: int) -> jax.Array:
    """sum_y q(y) log_weight over the leading `n_axes` (the enumerated variational latents).

    Args:
      log_weight: `[K_1, ..., K_e, *particles_and_batch]`.
      enumerated_log_q: log q(y), broadcastable to `log_weight`.
      n_axes: e, how many leading axes to sum.

    Returns:
      `[*particles_and_batch]`; values with q(y) = 0 contribute 0 (also to gradients).
    """
    if n_axes == 0:
        return log_weight
    shape = jnp.broadcast_shapes(jnp.shape(log_weight), jnp.shape(enumerated_log_q))
    log_weight, enumerated_log_q = (jnp.broadcast_to(x, shape) for x in (log_weight, enumerated_log_q))
    is_possible = enumerated_log_q > -jnp.inf
    terms = jnp.exp(enumerated_log_q) * jnp.where(is_possible, log_weight, 0.0)
    return jnp.sum(jnp.where(is_possible, terms, 0.0), axis=tuple(range(n_axes)))


def marginal(log_weight: jax.Array, enumerated_log_q: jax.Array, n_axes: int) -> jax.Array:
    """log sum_y p(x, y, z) / q(z | y) over the leading `n_axes`: q(y) cancels.

    Args:
      log_weight: log p(x, y, z) - log q(y, z), `[K_1, ..., K_e, *particles_and_batch]`.
      enumerated_log_q: log q(y), broadcastable to `log_weight`.
      n_axes: e.

    Returns:
      `[*particles_and_batch]`: the log-weight of each particle with y summed out, the quantity the
      importance weighted bound averages (an unbiased estimate of p(x) for each particle).
    """
    if n_axes == 0:
        return log_weight
    return jax.nn.logsumexp(log_weight + enumerated_log_q, axis=tuple(range(n_axes)))


def weighted_reinforce(log_joint: jax.Array, log_q: jax.Array, enumerated_log_q: jax.Array, n_axes: int,
                       state: estimators.ReinforceState, variance_reduction: bool = True,
                       baseline: jax.Array | None = None, decay: float = 0.8) -> estimators.ReinforceResult:
    """REINFORCE for each value of the enumerated variational latents, weighted by q(y).

    The ELBO is `sum_y q(y) V_y` with `V_y = E_{q(w | y)}[g_y]`, `g_y = log p(x, y, w) - log q(y) -
    log q(w | y)`. Its gradient `sum_y (grad q(y)) V_y + q(y) grad V_y` is estimated with the
    sampled `g_y` for `V_y` and, for `grad V_y`, the score-function estimate of each value on its own
    samples (`inference.estimators.reinforce`, centred by the q(y)-weighted moving average and the
    optional baseline). Each value's estimate needs only its own samples, so the noise those share
    across values (common random numbers) leaves it unbiased.

    Args:
      log_joint: log p(x, y, w), `[K_1, ..., K_e, *particles_and_batch]`; samples w carry no gradient.
      log_q: log q(y, w), broadcastable to `log_joint`.
      enumerated_log_q: log q(y), broadcastable to `log_joint`.
      n_axes: e, the number of leading enumeration axes.
      state, variance_reduction, baseline, decay: as in `inference.estimators.reinforce`.

    Returns:
      A `ReinforceResult` whose `cost` and `baseline_cost` have shape `[*particles_and_batch]`
      (the particle axis is not yet averaged).
    """
    shape = jnp.broadcast_shapes(jnp.shape(log_joint), jnp.shape(log_q), jnp.shape(enumerated_log_q))
    log_joint, log_q, enumerated_log_q = (jnp.broadcast_to(x, shape)
                                          for x in (log_joint, log_q, enumerated_log_q))
    is_possible = enumerated_log_q > -jnp.inf
    log_q_y = jnp.where(is_possible, enumerated_log_q, 0.0)
    probs = jnp.where(is_possible, jnp.exp(log_q_y), 0.0)
    weights = jax.lax.stop_gradient(probs)
    branch = estimators.reinforce(jnp.where(is_possible, log_joint - log_q_y, 0.0),
                                  jnp.where(is_possible, log_q - log_q_y, 0.0), state, axis=None,
                                  variance_reduction=variance_reduction, baseline=baseline, decay=decay,
                                  weights=weights)
    signal = jax.lax.stop_gradient(jnp.where(is_possible, log_joint - log_q, 0.0))
    axes = tuple(range(n_axes))
    cost = jnp.sum(weights * branch.cost - (probs - weights) * signal, axis=axes)
    baseline_cost = jnp.sum(weights * branch.baseline_cost, axis=axes)
    return estimators.ReinforceResult(cost, baseline_cost, branch.state)


def merge_axes(x: jax.Array, n_axes: int, axis: int | None, rank: int) -> tuple[jax.Array, int]:
    """Flattens the leading `n_axes` into the particle axis `axis`, for self-normalised weights.

    Args:
      x: `[K_1, ..., K_e, *particles_and_batch]` (broadcast to it).
      n_axes: e.
      axis: the particle axis of `particles_and_batch`, or None (the values become the samples).
      rank: the rank of `particles_and_batch`.

    Returns:
      `(merged, merged_axis)`: `merged` has rank `rank` (`rank + 1` when `axis` is None, with the
      values along a new leading axis), and `merged_axis` is where the samples are.
    """
    if axis is None:
        return x.reshape((-1,) + x.shape[n_axes:]), 0
    position = n_axes + axis % rank
    moved = jnp.moveaxis(x, tuple(range(n_axes)), tuple(range(position - n_axes, position)))
    shape, start = moved.shape, position - n_axes
    merged = shape[:start] + (math.prod(shape[start:position + 1]),) + shape[position + 1:]
    return moved.reshape(merged), start


def _grid(fn: Callable, sizes: Sequence[int], indices: tuple = ()):
    """`fn(indices)` at every index tuple of `range(sizes[0]) x ...`, vectorised: leading axes `sizes`."""
    if not sizes:
        return fn(indices)
    return jax.vmap(lambda i: _grid(fn, sizes[1:], indices + (i,)))(jnp.arange(sizes[0]))


def _expand(x: jax.Array, rank: int) -> jax.Array:
    x = jnp.asarray(x)
    return x.reshape((1,) * (rank - x.ndim) + x.shape)


def check_names(what: str, names: str | Sequence[str]) -> tuple[str, ...]:
    """`names` (a node name or a sequence of names) as a tuple, or a TypeError / ValueError."""
    names = (names,) if isinstance(names, str) else names
    if not isinstance(names, Sequence) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"{what}: enumerate must be a node name or a list of names, got {names!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{what}: enumerate names {repeated} more than once")
    return tuple(names)


def _check_single_variable(what: str, node: StochasticTensor) -> None:
    grouped = tuple(node.distribution.batch_shape)[len(node.distribution.batch_shape) - node.group_ndims:]
    if math.prod(grouped) > 1:
        raise ValueError(f"{what}: node {node.name!r} sums {math.prod(grouped)} variables into one "
                         f"log-probability (group_ndims={node.group_ndims} over batch axes {grouped}); "
                         "enumerating them jointly would need K^m values. Enumerate a node with "
                         "group_ndims=0 (one variable per log-probability)")


def _check_not_shared(what: str, node: StochasticTensor, log_weight_shape: tuple[int, ...],
                      particle_axes: Sequence[int]) -> None:
    """Raises when one value of the node serves several data points (cells along a data axis)."""
    shape = tuple(jnp.shape(node.log_prob))
    offset = len(log_weight_shape) - len(shape)
    for axis, size in enumerate(log_weight_shape):
        if axis in particle_axes or size == 1:
            continue
        if axis < offset or shape[axis - offset] != size:
            raise ValueError(f"{what}: node {node.name!r} (log-probability of shape {shape}) is shared by "
                             f"the {size} data points along axis {axis} of the log-weights (shape "
                             f"{log_weight_shape}); log sum_y prod_n p(x_n, y) does not split into one term "
                             "per data point, so it cannot be enumerated per data point. Give it one value "
                             "per data point")
