"""Neural networks from flax (`nnx`, `linen`) and equinox inside model and variational builders.

The JAX way to train a network is an explicit pytree of parameters and a pure function of it.
`split_module(module)` gives exactly that for any flax `nnx` or `linen` module or equinox module:
`(params, apply_fn)`, with `apply_fn(params, *inputs)` calling the module. Builders take `params`
like any other argument, and `inference.fit` trains them (numpyro's `flax_module`/`eqx_module`
role, without a hidden parameter store).

`random_module(bn, name, module, prior)` makes a Bayesian layer: each parameter becomes a
stochastic node named `"{name}.{path}"` (e.g. `"net.l1.kernel"`) with the given prior, and the
returned callable runs the module with the sampled (or observed) weights. Because the weights are
ordinary nodes, HMC/NUTS, SG-MCMC (which observe them by name) and SGVB (with the matching
`mean_field` variational builder) use it unchanged.

flax and equinox are optional (`pip install ppl-jax[nn]`); this module never imports them itself
unless a module of theirs is passed in.

References:
  Blundell, Cornebise, Kavukcuoglu and Wierstra, `Weight Uncertainty in Neural Networks
  <https://arxiv.org/abs/1505.05424>`_, 2015 (mean-field Gaussian weights trained by SGVB);
  Neal, Bayesian Learning for Neural Networks, 1996 (HMC over the weights).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

if TYPE_CHECKING:
    from ppl.bayesian_net import BayesianNet

__all__ = ["BayesianModule", "init_mean_field", "leaf_name", "mean_field", "random_module", "split_module"]


def leaf_name(path: Sequence[Any]) -> str:
    """A pytree key path as dot-joined names: `("l1", "kernel") -> "l1.kernel"`, `layers[0].weight ->
    "layers.0.weight"` (the same for a dict key, a NamedTuple field or a module attribute)."""
    parts = []
    for entry in path:
        for attribute in ("key", "name", "idx"):
            if hasattr(entry, attribute):
                parts.append(str(getattr(entry, attribute)))
                break
        else:
            parts.append(str(entry))
    return ".".join(parts)


def _library(module) -> str:
    if "flax" in sys.modules:
        from flax import linen, nnx
        if isinstance(module, nnx.Module):
            return "nnx"
        if isinstance(module, linen.Module):
            return "linen"
    if "equinox" in sys.modules:
        import equinox
        if isinstance(module, equinox.Module):
            return "equinox"
    raise TypeError(f"expected a flax nnx or linen module or an equinox module, got {type(module).__name__}")


def _split_nnx(module):
    from flax import nnx
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)

    def apply_fn(values, *args, **kwargs):
        state = jax.tree.map(lambda x: x, params)           # a fresh State to fill in
        nnx.replace_by_pure_dict(state, values)
        return nnx.merge(graphdef, state, rest)(*args, **kwargs)

    return nnx.to_pure_dict(params), apply_fn


def _split_linen(module, key, args, kwargs):
    if key is None:
        raise ValueError("a linen module has no parameters until it is initialised: pass key= and example "
                         "inputs, split_module(module, x_example, key=key)")
    variables = dict(module.init(key, *args, **kwargs))
    params = variables.pop("params", {})

    def apply_fn(values, *args, **kwargs):
        return module.apply({"params": values, **variables}, *args, **kwargs)

    return params, apply_fn


def _split_equinox(module):
    import equinox
    params, static = equinox.partition(module, equinox.is_inexact_array)

    def apply_fn(values, *args, **kwargs):
        return equinox.combine(values, static)(*args, **kwargs)

    return params, apply_fn


def split_module(module: Any, *example_args: Any, key: jax.Array | None = None,
                 **example_kwargs: Any) -> tuple[Any, Callable]:
    """A module as `(params, apply_fn)`: its trainable parameters and a pure function of them.

    Args:
      module: a flax `nnx.Module`, a flax `linen.Module` or an `equinox.Module`.
      *example_args: example inputs (linen only: they fix the parameter shapes).
      **example_kwargs: example keyword inputs (linen only).
      key: a JAX PRNG key for a linen module's initialisation.

    Returns:
      `(params, apply_fn)`: `params` a pytree of float arrays (nnx: a nested dict of the
      `nnx.Param` values; linen: the "params" collection; equinox: the module's inexact arrays,
      other leaves None); `apply_fn(params, *inputs, **kwargs)` returns the module's output. Other
      state (batch statistics, rng counters, static fields) is held fixed as it was.

    Raises:
      TypeError: `module` is not a flax or equinox module.
      ValueError: a linen module without `key`.

    Example:
      >>> params, mlp = ppl.nn.split_module(nnx.Linear(784, 10, rngs=nnx.Rngs(0)))
      >>> @ppl.meta_bayesian_net
      ... def model(params, x):
      ...     bn = ppl.BayesianNet()
      ...     bn.categorical("y", logits=mlp(params, x))
      ...     return bn
    """
    library = _library(module)
    if library == "nnx":
        return _split_nnx(module)
    if library == "linen":
        return _split_linen(module, key, example_args, example_kwargs)
    return _split_equinox(module)


class BayesianModule(NamedTuple):
    """A module whose parameters are nodes of a `BayesianNet`; call it like the module.

    Attributes:
      params: the sampled (or observed) parameters, the structure of `split_module`'s params, each
        leaf `[n_samples, *shape]` (no leading axis when `n_samples` is None).
      apply_fn: `apply_fn(params, *inputs)`, the module as a pure function.
      n_samples: the leading sample axis of every parameter, or None.
    """

    params: Any
    apply_fn: Callable
    n_samples: int | None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The module's output; with `n_samples`, one output per weight sample, `[n_samples, ...]`."""
        if self.n_samples is None:
            return self.apply_fn(self.params, *args, **kwargs)
        return jax.vmap(lambda params: self.apply_fn(params, *args, **kwargs))(self.params)


def _prior_distribution(prior, node: str, leaf) -> dist.Distribution:
    shape = tuple(jnp.shape(leaf))
    if isinstance(prior, (int, float)):
        distribution = dist.Normal(jnp.zeros(shape, leaf.dtype), jnp.asarray(prior, leaf.dtype))
    elif isinstance(prior, dist.Distribution):
        if prior.batch_shape or prior.event_shape:
            raise ValueError(f"node {node!r}: a prior distribution must be scalar (it is expanded to each "
                             f"parameter's shape), got batch {prior.batch_shape}, event {prior.event_shape}")
        distribution = prior.expand(shape)
    elif callable(prior):
        distribution = prior(node, shape)
    else:
        raise TypeError("prior must be a float (the std of a zero-mean normal), a scalar numpyro "
                        "distribution or a callable (name, shape) -> distribution, got "
                        f"{type(prior).__name__}")
    if tuple(distribution.batch_shape) + tuple(distribution.event_shape) != shape:
        raise ValueError(f"node {node!r}: the prior has shape {tuple(distribution.batch_shape)} + "
                         f"{tuple(distribution.event_shape)}, but the parameter has shape {shape}")
    return distribution


def _params_and_apply(module):
    if isinstance(module, tuple) and len(module) == 2 and callable(module[1]):
        return module
    if _library(module) == "linen":
        raise ValueError("pass a linen module as split_module(module, x_example, key=key), which fixes its "
                         "parameter shapes")
    return split_module(module)


def random_module(bn: BayesianNet, name: str, module: Any, prior: Any, *,
                  n_samples: int | None = None) -> BayesianModule:
    """Turns a module's parameters into stochastic nodes of `bn` with a prior (a Bayesian layer).

    Each parameter leaf at path `p` becomes the node `f"{name}.{p}"` (dot-joined, e.g.
    `"net.l1.kernel"`) following `prior` over the leaf's whole shape (`group_ndims` covers every
    axis, so its `log_prob` is one number per sample). Observed nodes (an MCMC position, a
    variational sample) are used as given; the module's own parameter values only give shapes.

    Args:
      bn: the `ppl.BayesianNet` being built.
      name: the prefix of the node names.
      module: a flax `nnx` or equinox module, or `(params, apply_fn)` from `split_module` (needed
        for linen).
      prior: a float (the standard deviation of a zero-mean normal), a scalar numpyro distribution
        (expanded to each parameter's shape), or `prior(node_name, shape) -> Distribution`.
      n_samples: draw this many weight samples along a new leading axis (e.g. the model's
        `n_particles`); the returned module then maps its inputs through each sample.

    Returns:
      A `BayesianModule`: call it like the module.

    Raises:
      ValueError: a prior whose shape is not the parameter's (names the node), or a linen module
        not yet split; see also `BayesianNet.stochastic` (duplicate names, bad observations).

    Example:
      >>> @ppl.meta_bayesian_net
      ... def bnn(x, n_particles=None):
      ...     bn = ppl.BayesianNet()
      ...     net = ppl.nn.random_module(bn, "net", mlp, prior=1.0, n_samples=n_particles)
      ...     bn.normal("y", net(x)[..., 0], std=0.1, group_ndims=1)
      ...     return bn
    """
    params, apply_fn = _params_and_apply(module)
    paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    values = []
    for path, leaf in paths:
        node = f"{name}.{leaf_name(path)}"
        values.append(bn.stochastic(node, _prior_distribution(prior, node, leaf), group_ndims=jnp.ndim(leaf),
                                    n_samples=n_samples))
    return BayesianModule(jax.tree_util.tree_unflatten(treedef, values), apply_fn, n_samples)


def init_mean_field(params: Any, log_scale: float = -3.0) -> dict:
    """Variational parameters for `mean_field`: `{"loc": params, "log_scale": params' shapes filled
    with log_scale}` (a small initial spread: the weights start near their point values)."""
    return {"loc": params, "log_scale": jax.tree.map(lambda x: jnp.full_like(x, log_scale), params)}


def mean_field(bn: BayesianNet, name: str, variational_params: dict, *,
               n_samples: int | None = None) -> Any:
    """The mean-field Gaussian variational net matching `random_module(bn, name, ...)`.

    Adds one normal node per parameter, `f"{name}.{path}"` with mean `loc` and log-std
    `log_scale` (from `init_mean_field`, trained by `inference.fit`), so that
    `inference.elbo(model, observed, variational=q)` pairs them with the model's weight nodes.

    Args:
      bn: the variational `ppl.BayesianNet` being built.
      name: the same prefix as in `random_module`.
      variational_params: `{"loc": tree, "log_scale": tree}`, trees of the module's parameter
        structure.
      n_samples: weight samples along a new leading axis.

    Returns:
      The sampled parameters, the structure of `loc`.

    Raises:
      ValueError: `loc` and `log_scale` of different structures.
    """
    loc, log_scale = variational_params["loc"], variational_params["log_scale"]
    if jax.tree.structure(loc) != jax.tree.structure(log_scale):  # type: ignore[operator]  # jaxlib has no PyTreeDef stub
        raise ValueError("mean_field: loc and log_scale need the same structure")
    paths, treedef = jax.tree_util.tree_flatten_with_path(loc)
    values = []
    for (path, mean), logstd in zip(paths, jax.tree.leaves(log_scale), strict=True):
        values.append(bn.normal(f"{name}.{leaf_name(path)}", mean, logstd=logstd, group_ndims=jnp.ndim(mean),
                                n_samples=n_samples))
    return jax.tree_util.tree_unflatten(treedef, values)
