"""From a `ppl` model to what the HMC-family drivers sample, as separate, replaceable steps.

- `split_model` / `rebuild_model`: a `MetaBayesianNet` and its observations as traced arrays (every
  array leaf of the builder's arguments and of `observed`) plus a hashable static part (the
  builder, the non-array arguments, the `log_joint` override, the shapes), so a compiled program
  is keyed on what determines it and re-run on new data of the same shapes.
- `log_joint_model(meta_bn, observed)`: the model-to-log-joint step, run inside the compiled program
  (on traced data): the unconstrained log-joint, the maps between spaces and the latents' specs.
- `latent_summary(...)`: the latents' names, shapes and dtypes, found once per static key outside
  jit (clear errors before any tracing; cached).
- `initial_positions(key, model, init, n_chains)`: the initial-position step, inside the program.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Hashable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

import ppl
from inference.compile_cache import CompileCache, Static, rebuild, split_static, static_key
from inference.log_joint import LogJointModel, latent_specs, make_log_joint

__all__ = ["LatentSummary", "ModelStatic", "split_model", "rebuild_model", "log_joint_model",
           "latent_summary", "initial_positions", "mark_concrete", "CONCRETE_ERRORS"]

# errors a builder raises when it needs an array argument's values (NumPy calls, Python control flow)
CONCRETE_ERRORS = (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError,
                   jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)

_SUMMARIES = CompileCache(maxsize=64)
_CONCRETE_BUILDERS: set = set()   # builders that need concrete arrays: their arrays stay static


class LatentSummary(NamedTuple):
    """A latent's shape (constrained), dtype and unconstrained shape."""

    shape: tuple
    dtype: Any
    unconstrained_shape: tuple


class ModelStatic(NamedTuple):
    """The static part of `(meta_bn, observed)`.

    Attributes:
      builder: the model builder function.
      template: a copy of the `MetaBayesianNet` without its arguments: everything else it holds (the
        `log_joint` override, observation-check settings, ...) is kept and enters `key`.
      arguments: the static part of the builder's `(args, kwargs)`.
      observed: the static part of `observed`.
      n_argument_arrays: how many of the traced arrays are builder arguments (the rest: observed).
      key: hashable, what determines a program built from this model.
    """

    builder: Any
    template: Any
    arguments: Static
    observed: Static
    n_argument_arrays: int
    key: Hashable


def _parts(meta_bn):
    """`(builder, args, kwargs, template)`: the template is a shallow copy without the arguments."""
    if not isinstance(meta_bn, ppl.MetaBayesianNet):
        raise TypeError(f"expected a ppl.MetaBayesianNet (a builder decorated with @ppl.meta_bayesian_net, "
                        f"called with its arguments), got {type(meta_bn).__name__}")
    template = copy.copy(meta_bn)
    template._args, template._kwargs = (), {}
    return meta_bn._builder, meta_bn._args, meta_bn._kwargs, template


def _template_key(template):
    """The template's attributes (builder, overrides, settings) as a cache key."""
    return tuple((name, static_key(value)) for name, value in sorted(vars(template).items()))


def split_model(meta_bn, observed: Mapping[str, Any], trace_arguments: bool | None = None
                ) -> tuple[list, ModelStatic]:
    """`(meta_bn, observed)` -> `(arrays, ModelStatic)`; see the module docstring.

    Args:
      meta_bn: a `ppl.MetaBayesianNet`.
      observed: `{name: value}`.
      trace_arguments: trace the builder's array arguments; None: yes, unless the builder is known
        to need concrete arrays (`mark_concrete`).

    Raises:
      TypeError: `meta_bn` is not a `ppl.MetaBayesianNet`.
    """
    builder, args, kwargs, template = _parts(meta_bn)
    builder_key = static_key(builder)
    trace_args = builder_key not in _CONCRETE_BUILDERS if trace_arguments is None else trace_arguments
    observed = {name: value if _is_arraylike(value) else jnp.asarray(value)
                for name, value in observed.items()}
    arg_arrays, arg_static = split_static((args, kwargs), trace_arrays=trace_args)
    obs_arrays, obs_static = split_static(observed)
    key = (builder_key, _template_key(template), arg_static.key, obs_static.key)
    return [*arg_arrays, *obs_arrays], ModelStatic(builder, template, arg_static, obs_static, len(arg_arrays),
                                                   key)


def _is_arraylike(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def rebuild_model(static: ModelStatic, arrays) -> tuple[Any, dict]:
    """The `(meta_bn, observed)` of `split_model`, with `arrays` (tracers) in place."""
    n = static.n_argument_arrays
    args, kwargs = rebuild(static.arguments, arrays[:n])
    observed = rebuild(static.observed, arrays[n:])
    meta_bn = copy.copy(static.template)
    meta_bn._args, meta_bn._kwargs = tuple(args), dict(kwargs)
    return meta_bn, observed


def mark_concrete(static: ModelStatic) -> None:
    """Remembers that `static.builder` needs concrete arrays (it failed to trace with traced ones)."""
    name = getattr(static.builder, "__name__", repr(static.builder))
    warnings.warn(f"the model builder {name!r} uses the values of its array arguments (NumPy calls or Python "
                  "control flow on them), so they cannot be traced: each call with new arrays compiles anew. "
                  "Use jax.numpy in the builder to compile once.", UserWarning, stacklevel=4)
    _CONCRETE_BUILDERS.add(static_key(static.builder))


def log_joint_model(meta_bn, observed: Mapping[str, Any],
                    summary: Mapping[str, LatentSummary] | None = None) -> LogJointModel:
    """The model-to-log-joint step: `inference.log_joint.make_log_joint` (replaceable).

    Args:
      meta_bn, observed: the model (with traced data inside the compiled program).
      summary: the latents found outside (`latent_summary`); when given, the model is run at zeros
        of those shapes to read the supports, so nothing is sampled inside the program.
    """
    init = None if summary is None else {name: jnp.zeros(s.shape, s.dtype) for name, s in summary.items()}
    return make_log_joint(meta_bn, observed, init=init)


def latent_summary(meta_bn, observed: Mapping[str, Any], static: ModelStatic, key=None
                   ) -> dict[str, LatentSummary]:
    """`{name: LatentSummary}` of the latents, discovered by running the model once (cached).

    Raises:
      See `inference.log_joint.latent_specs`.
    """
    def discover():
        specs = latent_specs(meta_bn, observed, key=key)
        return {name: LatentSummary(s.shape, jnp.dtype(s.dtype), s.unconstrained_shape)
                for name, s in specs.items()}

    return _SUMMARIES.get(static.key, discover)


def initial_positions(key, model: LogJointModel, init: Mapping[str, Any], n_chains: int) -> dict:
    """Per-chain unconstrained starting points `{name: [n_chains, *unconstrained_shape]}`.

    Latents in `init` (each of the latent's shape, or with a leading `[n_chains]` axis) start
    there; the others uniformly in [-2, 2] on the unconstrained space (NumPyro's `init_to_uniform`).
    """
    position = {}
    for index, (name, spec) in enumerate(model.specs.items()):
        if name in init:
            value = jnp.broadcast_to(jnp.asarray(init[name], spec.dtype), (n_chains, *spec.shape))
            position[name] = jax.vmap(spec.transform.inv)(value)
        else:
            shape = (n_chains, *spec.unconstrained_shape)
            position[name] = jax.random.uniform(jax.random.fold_in(key, index), shape, spec.dtype, -2.0, 2.0)
    return position
