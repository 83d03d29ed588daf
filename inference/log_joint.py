"""A model's log-joint as a plain function of its latents, on an unconstrained space.

`log_joint_fn(meta_bn, observed)` turns a `ppl.MetaBayesianNet` and its observations into
`position -> log p(x, z)`, a function of a dict of latent values that any JAX tool (BlackJAX,
optax, `jax.grad`) can use. Latents whose distribution has a constrained support (positive,
unit interval, simplex, ...) are moved to an unconstrained space with numpyro's
`biject_to(distribution.support)`, and the log-determinant of the Jacobian is added, so that
HMC and other samplers on R^d sample the right distribution:

.. math::
  \\log \\tilde p(x, u) = \\log p(x, T(u)) + \\log |\\det \\partial T(u) / \\partial u|

The log-joint is the sum of every stochastic node's log-density over all its axes (a scalar), not
the broadcast per-data-point sum of `BayesianNet.log_joint` (which would count a global prior once
per data point); a `meta_bn.log_joint` override is used as given and summed.

The latent names, shapes and supports are found by running the model once (`LatentSpec`). The
supports must not depend on the values of other latents (e.g. `uniform(0, z)` with a latent `z`).

References:
  Carpenter et al., `Stan: A Probabilistic Programming Language
  <https://doi.org/10.18637/jss.v076.i01>`_, 2017 (section on constrained variables).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform, biject_to

__all__ = ["LatentSpec", "LogJointModel", "latent_specs", "log_joint_fn", "make_log_joint",
           "unconstrained_log_joint_fn"]

_SHAPE_KEY_SEED = 0  # only shapes and supports are read from the discovery run; its draws are discarded


class LatentSpec(NamedTuple):
    """What a latent node looks like.

    Attributes:
      shape: the node's value shape (n_samples, batch and event axes), constrained space.
      dtype: the value's dtype.
      support: the distribution's `numpyro.distributions.constraints.Constraint`.
      transform: `biject_to(support)`, unconstrained -> constrained.
      unconstrained_shape: the shape in the unconstrained space (differs for e.g. a simplex).
    """

    shape: tuple[int, ...]
    dtype: Any
    support: constraints.Constraint
    transform: Transform
    unconstrained_shape: tuple[int, ...]


class LogJointModel(NamedTuple):
    """A model's log-joint on the unconstrained space, with the maps between the two spaces.

    Attributes:
      log_joint_fn: `position -> log p(x, T(u)) + log|J|`, shape `[]`; `position` maps each latent
        name to its unconstrained value of shape `specs[name].unconstrained_shape`.
      to_constrained: `position -> {name: T(u)}` (works on any leading batch axes).
      to_unconstrained: `{name: z} -> {name: T^{-1}(z)}`.
      specs: `{name: LatentSpec}` for every latent, in the model's node order.
    """

    log_joint_fn: Callable[[dict], jax.Array]
    to_constrained: Callable[[dict], dict]
    to_unconstrained: Callable[[dict], dict]
    specs: dict[str, LatentSpec]


def latent_specs(meta_bn, observed: Mapping[str, Any], init: Mapping[str, Any] | None = None,
                 key: jax.Array | None = None) -> dict[str, LatentSpec]:
    """Runs the model once and describes every stochastic node that is not in `observed`.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the observed nodes.
      init: optional `{name: value}` for latents; those given are not sampled.
      key: a key for sampling the latents `init` does not give; None uses a fixed key, which is
        harmless because the draws are only used for their shapes and discarded.

    Returns:
      `{name: LatentSpec}` in node order.

    Raises:
      TypeError: a latent has a discrete support (HMC needs continuous latents).
      ValueError: `init` names a node that the model does not have, or that is observed.
    """
    observed, init = dict(observed), dict(init or {})
    clash = sorted(set(init) & set(observed))
    if clash:
        raise ValueError(f"init gives {clash}, which are observed; init is for latents only")
    key = jax.random.key(_SHAPE_KEY_SEED) if key is None else key
    bn = meta_bn.observe(key, **observed, **init)
    nodes = {name: node for name, node in bn.stochastic_nodes().items() if name not in observed}
    unknown = sorted(set(init) - set(nodes))
    if unknown:
        raise ValueError(f"init gives {unknown}, but the model's latents are {list(nodes)}")
    specs = {}
    for name, node in nodes.items():
        support = node.distribution.support
        if getattr(support, "is_discrete", False):
            raise TypeError(f"latent {name!r} ({type(node.distribution).__name__}) is discrete; "
                            "HMC needs continuous latents: observe it or marginalise it out")
        shape = tuple(jnp.shape(node.value))
        transform = biject_to(support)
        unconstrained_shape = tuple(transform.inverse_shape(shape))
        dtype = jnp.result_type(node.value, float)
        specs[name] = LatentSpec(shape, dtype, support, transform, unconstrained_shape)
    return specs


def make_log_joint(meta_bn, observed: Mapping[str, Any], init: Mapping[str, Any] | None = None,
                   key: jax.Array | None = None) -> LogJointModel:
    """Builds the unconstrained log-joint of `meta_bn` given `observed`, and the space maps.

    Args:
      meta_bn, observed, init, key: see `latent_specs`.

    Returns:
      A `LogJointModel`.

    Raises:
      See `latent_specs`.
    """
    observed = dict(observed)
    specs = latent_specs(meta_bn, observed, init, key)

    def to_constrained(position):
        return {name: spec.transform(position[name]) for name, spec in specs.items()}

    def to_unconstrained(values):
        return {name: spec.transform.inv(jnp.asarray(values[name], spec.dtype))
                for name, spec in specs.items()}

    log_joint = unconstrained_log_joint_fn(meta_bn, observed, specs)

    return LogJointModel(log_joint, to_constrained, to_unconstrained, specs)


def unconstrained_log_joint_fn(meta_bn, observed: Mapping[str, Any],
                               specs: Mapping[str, LatentSpec]) -> Callable[[dict], jax.Array]:
    """`position -> log p(observed, T(u)) + log|J_T(u)|` with the transforms `T` of `specs`.

    `specs` may come from another model with the same latents (AIS evaluates a proposal net on the
    target's unconstrained space this way).

    Args:
      meta_bn: the `ppl.MetaBayesianNet` whose log-joint is evaluated.
      observed: its observations.
      specs: `{name: LatentSpec}`: which nodes the position gives and how they are transformed.

    Returns:
      A function of `{name: unconstrained value}` returning a scalar (nats).
    """
    observed, specs = dict(observed), dict(specs)

    def log_joint(position):
        missing = sorted(set(specs) - set(position))
        if missing:
            raise KeyError(f"position lacks latents {missing}; it must give every latent of {list(specs)}")
        values, log_det = {}, jnp.zeros(())
        for name, spec in specs.items():
            u = position[name]
            values[name] = spec.transform(u)
            log_det = log_det + jnp.sum(spec.transform.log_abs_det_jacobian(u, values[name]))
        bn = meta_bn.observe(**observed, **values)
        return _total_log_joint(meta_bn, bn) + log_det

    return log_joint


def _total_log_joint(meta_bn, bn) -> jax.Array:
    """log p of every random variable in `bn`, a scalar.

    `bn.log_joint()` adds the nodes' log-densities with broadcasting (a per-data-point value), which
    would count a scalar prior once per data point; here each node's `log_prob` is summed over all
    its axes first. A `meta_bn.log_joint` override is respected and summed to a scalar.
    """
    if getattr(meta_bn, "log_joint", None) is not None:
        return jnp.sum(bn.log_joint())
    terms = [jnp.sum(node.log_prob) for node in bn.stochastic_nodes().values()]
    return sum(terms, jnp.zeros(()))


def log_joint_fn(meta_bn, observed: Mapping[str, Any],
                 key: jax.Array | None = None) -> Callable[[dict], jax.Array]:
    """`position -> log p(x, z)` for any JAX tool, on the unconstrained space (Jacobian added).

    For latents with real support (normal, laplace, ...) the position is the latent's value; for
    constrained ones it is `biject_to(support).inv(value)` (e.g. log of a gamma variable). Use
    `make_log_joint(...).to_constrained` to map positions back.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the observed nodes; every other stochastic node is a latent.
      key: optional key for the one shape-discovery run (see `latent_specs`).

    Returns:
      A function of `{latent name: array}` returning a scalar log-density (nats), to maximise.

    Raises:
      See `latent_specs`.

    Example:
      >>> fn = log_joint_fn(model, {"y": y})
      >>> jax.grad(fn)({"w": jnp.zeros(3)})["w"].shape
      (3,)
    """
    return make_log_joint(meta_bn, observed, key=key).log_joint_fn
