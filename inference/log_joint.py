"""A model's log-joint as a plain function of its latents, on an unconstrained space.

`log_joint_fn(meta_bn, observed)` turns a `ppl.MetaBayesianNet` and its observations into
`position -> log p(x, z)`, a function of a dict of latent values that any JAX tool (BlackJAX,
optax, `jax.grad`) can use. Latents whose distribution has a constrained support (positive,
unit interval, simplex, ...) are moved to an unconstrained space with numpyro's
`biject_to(distribution.support)`, and the log-determinant of the Jacobian is added, so that
HMC and other samplers on R^d sample the right distribution:

.. math::
  \\log \\tilde p(x, u) = \\log p(x, T(u)) + \\log |\\det \\partial T(u) / \\partial u|

Each evaluation runs the model under `ppl.substitute`, and each latent's transform `T` is derived
from its distribution at that moment, i.e. at the current values of the latents built before it
(as NumPyro does): a support that depends on another latent (`w ~ U(0, z)`) is handled exactly.

The log-joint is the sum of every stochastic node's log-density over all its axes (a scalar), not
the broadcast per-data-point sum of `BayesianNet.log_joint` (which would count a global prior once
per data point); a `meta_bn.log_joint` override is used as given and summed.

The latents' names and shapes are found without sampling anything (`latent_specs`): the model is
traced abstractly (`jax.eval_shape`) with every latent substituted, so distributions without a
`sample` method (flat and improper priors such as numpyro's `ImproperUniform`) work as latents,
and no likelihood is evaluated at an arbitrary point.

References:
  Carpenter et al., `Stan: A Probabilistic Programming Language
  <https://doi.org/10.18637/jss.v076.i01>`_, 2017 (section on constrained variables);
  Phan et al., `Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro
  <https://arxiv.org/abs/1912.11554>`_, 2019.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform, biject_to

from ppl.meta import MetaBayesianNet
from ppl.substitution import substitute

__all__ = ["LatentSpec", "LogJointModel", "constrained_net", "latent_specs", "deterministic_specs",
           "log_joint_fn", "make_log_joint", "total_log_joint", "unconstrained_log_joint_fn",
           "values_log_joint_fn"]


class LatentSpec(NamedTuple):
    """What a latent node looks like.

    Attributes:
      shape: the node's value shape (n_samples, batch and event axes), constrained space.
      dtype: the value's dtype.
      support: the distribution's `numpyro.distributions.constraints.Constraint`, or None when it
        depends on other latents or on traced values (it is re-derived at every evaluation anyway).
      transform: `biject_to(support)`, unconstrained -> constrained (None like `support`).
      unconstrained_shape: the shape in the unconstrained space (differs for e.g. a simplex).
    """

    shape: tuple[int, ...]
    dtype: Any
    support: constraints.Constraint | None
    transform: Transform | None
    unconstrained_shape: tuple[int, ...]


class LogJointModel(NamedTuple):
    """A model's log-joint on the unconstrained space, with the maps between the two spaces.

    Attributes:
      log_joint_fn: `position -> log p(x, T(u)) + log|J|`, shape `[]`; `position` maps each latent
        name to its unconstrained value of shape `specs[name].unconstrained_shape`.
      to_constrained: `position -> {name: T(u)}` (works on any leading batch axes).
      to_unconstrained: `{name: z} -> {name: T^{-1}(z)}` (works on any leading batch axes).
      specs: `{name: LatentSpec}` for every latent, in the model's node order.
      nodes_fn: `(position, names) -> {name: value}` for latents (constrained) and deterministic nodes.
      constrain: `position -> ({name: T(u)}, log|J|)`, one position.
      deterministic: `{name: jax.ShapeDtypeStruct}` of the deterministic nodes.
    """

    log_joint_fn: Callable[[dict], jax.Array]
    to_constrained: Callable[[dict], dict]
    to_unconstrained: Callable[[dict], dict]
    specs: dict[str, LatentSpec]
    nodes_fn: Callable[[dict, Any], dict] | None = None
    constrain: Callable[[dict], tuple[dict, jax.Array]] | None = None
    deterministic: dict | None = None


def constrained_net(meta_bn, observed: Mapping[str, Any], position: Mapping[str, Any]):
    """Runs the model with each latent in `position` at `T(u)`, `T` derived at its current support.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}`.
      position: `{latent name: unconstrained value}` for every latent.

    Returns:
      `(bn, values, log_det)`: the `BayesianNet`, `{name: T(u)}` and the summed log|det J| (`[]`).
    """
    values, log_dets = {}, []

    def substitute_fn(site):
        if site.distribution is None or site.is_observed or site.name not in position:
            return None
        transform = biject_to(site.distribution.support)
        u = position[site.name]
        values[site.name] = z = transform(u)
        log_dets.append(jnp.sum(transform.log_abs_det_jacobian(u, z)))
        return z

    with substitute(substitute_fn):
        bn = meta_bn.observe(**observed)
    return bn, values, sum(log_dets, jnp.zeros((), jnp.result_type(float)))


def _has_tracer(tree) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _discover(meta_bn, observed, init):
    """`(latent specs, deterministic shapes)` by an abstract run with every latent substituted."""
    found = {}

    def substitute_fn(site):
        if site.distribution is None or site.is_observed:
            return None
        support = site.distribution.support
        if getattr(support, "is_discrete", False):
            raise TypeError(f"latent {site.name!r} ({type(site.distribution).__name__}) is discrete; "
                            "HMC needs continuous latents: observe it or marginalise it out")
        transform = biject_to(support)
        dtype = jnp.result_type(init[site.name], float) if site.name in init else jnp.result_type(float)
        shape = tuple(site.shape)
        unconstrained_shape = tuple(transform.inverse_shape(shape))
        static = not _has_tracer(support)
        found[site.name] = LatentSpec(shape, jnp.dtype(dtype), support if static else None,
                                      transform if static else None, unconstrained_shape)
        return transform(jnp.zeros(unconstrained_shape, dtype))   # inside the support, abstract

    def run():
        with substitute(substitute_fn):
            bn = meta_bn.observe(**observed)
        return {name: node.value for name, node in bn.nodes.items() if name not in bn.stochastic_nodes()}

    deterministic = jax.eval_shape(run)
    return found, deterministic


def latent_specs(meta_bn: MetaBayesianNet, observed: Mapping[str, Any], init: Mapping[str, Any] | None = None,
                 key: jax.Array | None = None) -> dict[str, LatentSpec]:
    """Describes every stochastic node that is not in `observed`, without sampling anything.

    The model is traced abstractly (`jax.eval_shape`) with each latent substituted by a point of its
    support, so improper priors work and no likelihood is evaluated; concrete observations are
    still checked (`ppl.checks`).

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the observed nodes.
      init: optional `{name: value}` for latents: checked to name latents, and their dtypes used.
      key: unused (kept for compatibility: nothing is sampled).

    Returns:
      `{name: LatentSpec}` in node order.

    Raises:
      TypeError: a latent has a discrete support (HMC needs continuous latents).
      ValueError: `init` names a node that the model does not have, or that is observed.

    Example:
      >>> latent_specs(model, {"y": y})["w"].shape
      (3,)
    """
    return _checked_discovery(meta_bn, observed, init)[0]


def deterministic_specs(meta_bn, observed: Mapping[str, Any]) -> dict[str, jax.ShapeDtypeStruct]:
    """`{name: jax.ShapeDtypeStruct}` of the model's deterministic nodes (found as `latent_specs`)."""
    return _checked_discovery(meta_bn, observed, None)[1]


def _checked_discovery(meta_bn, observed, init):
    observed, init = dict(observed), dict(init or {})
    clash = sorted(set(init) & set(observed))
    if clash:
        raise ValueError(f"init gives {clash}, which are observed; init is for latents only")
    specs, deterministic = _discover(meta_bn, observed, init)
    unknown = sorted(set(init) - set(specs))
    if unknown:
        raise ValueError(f"init gives {unknown}, but the model's latents are {list(specs)}")
    return specs, deterministic


def make_log_joint(meta_bn: MetaBayesianNet, observed: Mapping[str, Any],
                   init: Mapping[str, Any] | None = None, key: jax.Array | None = None,
                   specs: Mapping[str, LatentSpec] | None = None,
                   deterministic: Mapping[str, Any] | None = None) -> LogJointModel:
    """Builds the unconstrained log-joint of `meta_bn` given `observed`, and the space maps.

    Args:
      meta_bn, observed, init, key: see `latent_specs`.
      specs, deterministic: the latents' specs and deterministic shapes when already known (inside a
        compiled program); None discovers them.

    Returns:
      A `LogJointModel`.

    Raises:
      See `latent_specs`.
    """
    observed = dict(observed)
    if specs is None:
        specs, deterministic = _checked_discovery(meta_bn, observed, init)
    specs, deterministic = dict(specs), dict(deterministic or {})

    def constrain(position):
        _, values, log_det = constrained_net(meta_bn, observed, position)
        return values, log_det

    def nodes_fn(position, names):
        bn, values, _ = constrained_net(meta_bn, observed, position)
        return {name: values[name] if name in values else bn[name].value for name in names}

    def to_unconstrained_one(values):
        position = {}

        def substitute_fn(site):
            if site.distribution is None or site.is_observed or site.name not in specs:
                return None
            value = jnp.asarray(values[site.name], specs[site.name].dtype)
            position[site.name] = biject_to(site.distribution.support).inv(value)
            return value

        with substitute(substitute_fn):
            meta_bn.observe(**observed)
        return position

    to_constrained = _batched(lambda p: constrain(p)[0], specs, "unconstrained_shape")
    to_unconstrained = _batched(to_unconstrained_one, specs, "shape")
    log_joint = unconstrained_log_joint_fn(meta_bn, observed, specs)
    return LogJointModel(log_joint, to_constrained, to_unconstrained, specs, nodes_fn, constrain,
                         deterministic)


def _batched(fn, specs, field):
    """`fn` of one point, applied over any leading batch axes (found from `specs[...].<field>`)."""
    def apply(tree):
        name = next(iter(specs), None)
        if name is None:
            return fn(tree)
        batch = jnp.shape(tree[name])[:jnp.ndim(tree[name]) - len(getattr(specs[name], field))]
        if not batch:
            return fn(tree)
        flat = {k: jnp.reshape(v, (-1, *jnp.shape(v)[len(batch):])) for k, v in tree.items()}
        out = jax.vmap(fn)(flat)
        return {k: jnp.reshape(v, (*batch, *jnp.shape(v)[1:])) for k, v in out.items()}

    return apply


def unconstrained_log_joint_fn(meta_bn, observed: Mapping[str, Any],
                               specs: Mapping[str, Any]) -> Callable[[dict], jax.Array]:
    """`position -> log p(observed, T(u)) + log|J_T(u)|`, each `T` derived at its current support.

    Args:
      meta_bn: the `ppl.MetaBayesianNet` whose log-joint is evaluated.
      observed: its observations.
      specs: the latents (`{name: LatentSpec}` or any mapping over their names).

    Returns:
      A function of `{name: unconstrained value}` returning a scalar (nats).

    Raises:
      KeyError: (when called) the position lacks a latent.
    """
    observed, names = dict(observed), list(specs)

    def log_joint(position):
        missing = sorted(set(names) - set(position))
        if missing:
            raise KeyError(f"position lacks latents {missing}; it must give every latent of {names}")
        bn, _, log_det = constrained_net(meta_bn, observed, position)
        return total_log_joint(meta_bn, bn) + log_det

    return log_joint


def values_log_joint_fn(meta_bn, observed: Mapping[str, Any]) -> Callable[[dict], jax.Array]:
    """`values -> log p(observed, values)` on the constrained space (no Jacobian), a scalar.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`; observed: its observations.

    Returns:
      A function of `{latent name: constrained value}` (every latent) returning nats.
    """
    observed = dict(observed)
    return lambda values: total_log_joint(meta_bn, meta_bn.observe(**observed, **values))


def total_log_joint(meta_bn: Any, bn: Any) -> jax.Array:
    """log p of every random variable in `bn` (a `ppl.BayesianNet` built by `meta_bn`), a scalar.

    `bn.log_joint()` adds the nodes' log-densities with broadcasting (a per-data-point value), which
    would count a scalar prior once per data point; here each node's `log_prob` is summed over all
    its axes first. A `meta_bn.log_joint` override is respected and summed to a scalar.
    """
    if getattr(meta_bn, "log_joint", None) is not None:
        return jnp.sum(bn.log_joint())
    terms = [jnp.sum(node.log_prob) for node in bn.stochastic_nodes().values()]
    return sum(terms, jnp.zeros(()))


def log_joint_fn(meta_bn: MetaBayesianNet, observed: Mapping[str, Any],
                 key: jax.Array | None = None) -> Callable[[dict], jax.Array]:
    """`position -> log p(x, z)` for any JAX tool, on the unconstrained space (Jacobian added).

    For latents with real support (normal, laplace, ...) the position is the latent's value; for
    constrained ones it is `biject_to(support).inv(value)` (e.g. log of a gamma variable). Use
    `make_log_joint(...).to_constrained` to map positions back.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the observed nodes; every other stochastic node is a latent.
      key: unused (nothing is sampled to discover the latents).

    Returns:
      A function of `{latent name: array}` returning a scalar log-density (nats), to maximise.

    Raises:
      See `latent_specs`.

    Example:
      >>> fn = log_joint_fn(model, {"y": y})
      >>> jax.grad(fn)({"w": jnp.zeros(3)})["w"].shape
      (3,)
    """
    return make_log_joint(meta_bn, observed).log_joint_fn
