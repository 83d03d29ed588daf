"""From a `ppl` model to what the HMC-family drivers sample, as separate, replaceable steps.

- `split_model` / `rebuild_model`: a `MetaBayesianNet` and its observations as traced arrays (every
  array leaf of the builder's arguments and of `observed`) plus a hashable static part (the
  builder, the non-array arguments, the `log_joint` override, the shapes), so a compiled program
  is keyed on what determines it and re-run on new data of the same shapes.
- `log_joint_model(meta_bn, observed)`: the model-to-log-joint step, run inside the compiled program
  (on traced data): the unconstrained log-joint, the maps between spaces and the latents' specs.
- `latent_summary(...)`: the latents' names, shapes and dtypes, found once per static key outside
  jit (clear errors before any tracing; cached).
- `initial_states(keys, meta_bn, observed, model, init, strategy)`: the initial-state step (retried
  until valid, `inference.hmc.initialization`), inside its own small program; `check_initial_states`
  raises on the host, before sampling, when a chain found no valid start.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Hashable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

import ppl
from inference.compile_cache import CompileCache, Static, rebuild, split_static, static_key
from inference.hmc import initialization
from inference.hmc.initialization import MAX_INIT_TRIES, InitStrategy
from inference.hmc.kernel import HMCState
from inference.log_joint import (
    LatentSpec,
    LogJointModel,
    constrained_net,
    deterministic_specs,
    latent_specs,
    make_log_joint,
)

__all__ = ["LatentSummary", "ModelStatic", "split_model", "rebuild_model", "log_joint_model",
           "latent_summary", "deterministic_summary", "initial_states", "check_initial_states",
           "check_init_values",
           "mark_concrete", "CONCRETE_ERRORS"]

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


def split_model(meta_bn: Any, observed: Mapping[str, Any], trace_arguments: bool | None = None
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


def rebuild_model(static: ModelStatic, arrays: Sequence[Any]) -> tuple[Any, dict]:
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


def log_joint_model(meta_bn: Any, observed: Mapping[str, Any],
                    summary: Mapping[str, LatentSummary] | None = None,
                    deterministic: Mapping[str, Any] | None = None) -> LogJointModel:
    """The model-to-log-joint step: `inference.log_joint.make_log_joint` (replaceable).

    Args:
      meta_bn, observed: the model (with traced data inside the compiled program).
      summary: the latents found outside (`latent_summary`); when given, nothing is discovered (or
        sampled) inside the program.
      deterministic: the deterministic nodes' shapes (`deterministic_summary`).
    """
    if summary is None:
        return make_log_joint(meta_bn, observed)
    specs = {name: LatentSpec(s.shape, s.dtype, None, None, s.unconstrained_shape)
             for name, s in summary.items()}
    return make_log_joint(meta_bn, observed, specs=specs, deterministic=deterministic)


def _discovery(meta_bn, observed, static):
    def discover():
        specs = latent_specs(meta_bn, observed)
        latents = {name: LatentSummary(s.shape, jnp.dtype(s.dtype), s.unconstrained_shape)
                   for name, s in specs.items()}
        return latents, deterministic_specs(meta_bn, observed)

    return _SUMMARIES.get(static.key, discover)


def latent_summary(meta_bn: Any, observed: Mapping[str, Any], static: ModelStatic,
                   key: jax.Array | None = None) -> dict[str, LatentSummary]:
    """`{name: LatentSummary}` of the latents, found by an abstract run of the model (cached).

    Raises:
      See `inference.log_joint.latent_specs`.
    """
    return _discovery(meta_bn, observed, static)[0]


def deterministic_summary(meta_bn: Any, observed: Mapping[str, Any], static: ModelStatic) -> dict:
    """`{name: jax.ShapeDtypeStruct}` of the deterministic nodes (cached with `latent_summary`)."""
    return _discovery(meta_bn, observed, static)[1]


def initial_states(keys: jax.Array, meta_bn: Any, observed: Mapping[str, Any], model: LogJointModel,
                   init: Mapping[str, Any], strategy: InitStrategy) -> tuple[HMCState, jax.Array, jax.Array]:
    """Per-chain valid starts: `(HMCState [n_chains], is_valid [n_chains], n_tries [n_chains])`.

    Args:
      keys: `[n_chains]` keys.
      meta_bn, observed, model: the model and its `LogJointModel`.
      init: `{latent: value}` (constrained), each of the latent's shape or `[n_chains, *shape]`.
      strategy: how latents not in `init` are drawn (`inference.hmc.initialization`).
    """
    n_chains = keys.shape[0]
    values = {name: jnp.broadcast_to(jnp.asarray(value, model.specs[name].dtype),
                                     (n_chains, *model.specs[name].shape)) for name, value in init.items()}
    return initialization.initial_states(keys, meta_bn, observed, model.specs, values, strategy,
                                         model.log_joint_fn)


def check_init_values(init: Mapping[str, Any], summary: Mapping[str, LatentSummary]) -> None:
    """Raises when a user-given start holds NaN or inf, naming the latent, the chain and the value.

    Raises:
      ValueError: a non-finite `init` value.
    """
    for name, value in init.items():
        array = np.asarray(value)
        if np.all(np.isfinite(array)):
            continue
        per_chain = array.ndim == len(summary[name].shape) + 1
        chains = sorted({int(i[0]) for i in np.argwhere(~np.isfinite(array))}) if per_chain else "all"
        bad = array[~np.isfinite(array)].ravel()[:3].tolist()
        raise ValueError(f"init[{name!r}] is not finite for chain(s) {chains}: holds {bad}; give finite "
                         "starting values inside the latent's support")


def check_initial_states(states: HMCState, is_valid: ArrayLike, n_tries: ArrayLike, strategy: InitStrategy,
                         meta_bn: Any, observed: Mapping[str, Any]) -> None:
    """Raises on the host when a chain found no start with a finite log-joint and gradient.

    Raises:
      ValueError: naming the chain(s), the latents with non-finite values or gradients at the last
        try, and the nodes whose log-density is not finite there.
    """
    is_valid = np.asarray(is_valid)
    if is_valid.all():
        return
    chains = np.flatnonzero(~is_valid).tolist()
    c = chains[0]
    position = {name: np.asarray(v[c]) for name, v in states.position.items()}
    grads = {name: np.asarray(v[c]) for name, v in states.log_joint_grad.items()}
    latents = sorted(name for name in position
                     if not (np.isfinite(position[name]).all() and np.isfinite(grads[name]).all()))
    raise ValueError(
        f"chain(s) {chains}: no starting point with a finite log-joint and gradient after "
        f"{int(np.asarray(n_tries)[c])} tries of {strategy!r} (at most {MAX_INIT_TRIES}); at chain {c}'s "
        "last "
        f"try log_joint={float(np.asarray(states.log_joint)[c])}, non-finite value or gradient for latents "
        f"{latents or 'none'}, non-finite log-density at nodes {_bad_nodes(meta_bn, observed, position)}, "
        f"latents (unconstrained) {_preview(position)}. "
        "Give init= values inside the support, another init_strategy, or check the model.")


def _preview(position) -> dict:
    """The first few entries of each latent, for messages."""
    return {name: np.round(np.ravel(value)[:3], 4).tolist() for name, value in position.items()}


def _bad_nodes(meta_bn, observed, position) -> list | str:
    """The nodes whose log-density is not finite at `position` (evaluated eagerly, on the error path)."""
    try:
        bn, _, _ = constrained_net(meta_bn, observed, position)
        return [name for name, node in bn.stochastic_nodes().items()
                if not np.isfinite(np.asarray(jnp.sum(node.log_prob)))]
    except Exception as error:   # noqa: BLE001 - a diagnosis only; the main error is raised anyway
        return f"unknown ({type(error).__name__})"
