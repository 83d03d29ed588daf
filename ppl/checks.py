"""Checks of observed values, and the setting that says what an out-of-support value does.

`check_observation` runs when a node is observed. Kinds, shapes and dtypes are static and always
checked. Values are checked only where they are concrete (a NumPy array, a Python number, or a
`jax.Array` outside any trace): under `jax.jit`/`jax.grad` an observation passed as an argument is an
abstract tracer and nothing is computed for it, so a jitted training step pays nothing; there the
samplers' `Info` fields report numerical trouble instead.

* NaN or inf values are an error (naming the node and how many): missing data is masked
  explicitly, never by NaN (e.g. `bn.stochastic("x", dist.Normal(m, s).mask(is_present))` with a
  finite placeholder where a value is missing).
* Values outside the distribution's support (a gamma observed at -1, a Bernoulli at 0.5, a
  non-simplex Dirichlet value, category 5 of 3) are counted and, depending on the setting,
  warned about (`OutOfSupportWarning`, the default), raised (`"error"`), or let through
  (`"ignore"`, e.g. for grey-level pixels deliberately put into a Bernoulli likelihood).

These checks sit beside numpyro's own validation, which they leave as it is: numpyro (validation
on by default) sets the log-density of an out-of-support value to -inf, also under `jax.jit`, and
warns without the node's name when the value is concrete. To use grey-level pixels as Bernoulli
"probabilities" on purpose, turn both off: `out_of_support="ignore"` here and
`numpyro.enable_validation(False)` there.

The setting is global (`set_out_of_support`), per block (`with out_of_support("error"):`), or per
model (`meta_bayesian_net(builder, out_of_support="ignore")`, which wins over the other two); it is
never an argument of `observe`, so it cannot collide with a node name.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
import warnings
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

__all__ = ["OutOfSupportWarning", "check_observation", "get_out_of_support", "out_of_support",
           "set_out_of_support"]

_MODES = ("warn", "error", "ignore")
_STATE = threading.local()
_GLOBAL = {"mode": "warn"}


class OutOfSupportWarning(UserWarning):
    """An observed value lies outside its node's support (filter it by this category)."""


def check_mode(mode: str) -> str:
    """`mode` if it is "warn", "error" or "ignore", else a ValueError."""
    if mode not in _MODES:
        raise ValueError(f"out_of_support must be one of {_MODES}, got {mode!r}")
    return mode


def set_out_of_support(mode: str) -> str:
    """Sets, for the whole process, what an out-of-support observation does; returns the old mode.

    Args:
      mode: "warn" (the default: an `OutOfSupportWarning` naming the node and the count), "error"
        (a `ValueError`), or "ignore".

    Returns:
      The previous global mode.

    Raises:
      ValueError: an unknown mode.

    Example:
      >>> previous = ppl.set_out_of_support("error")   # strict from now on
    """
    previous, _GLOBAL["mode"] = _GLOBAL["mode"], check_mode(mode)
    return previous


@contextlib.contextmanager
def out_of_support(mode: str) -> Iterator[None]:
    """Within the block, out-of-support observations do `mode` ("warn", "error" or "ignore").

    A model built with `meta_bayesian_net(..., out_of_support=...)` keeps its own mode.

    Example:
      >>> with ppl.out_of_support("error"):
      ...     bn = model.observe(key, x=x)      # raises if x is outside the support
    """
    stack = _stack()
    stack.append(check_mode(mode))
    try:
        yield
    finally:
        stack.pop()


def get_out_of_support(model_mode: str | None = None) -> str:
    """The mode in force: the model's own if given, else the innermost block's, else the global one."""
    if model_mode is not None:
        return model_mode
    stack = _stack()
    return stack[-1] if stack else _GLOBAL["mode"]


def _stack() -> list[str]:
    if not hasattr(_STATE, "stack"):
        _STATE.stack = []
    return _STATE.stack


def is_concrete(value: Any) -> bool:
    """Whether `value` holds numbers now (not an abstract tracer inside a transformation)."""
    return not isinstance(value, jax.core.Tracer)


def check_observation(name: str, value: Any, distribution: dist.Distribution,
                      expected: tuple[int, ...], mode: str, float_indices: bool = False) -> jax.Array:
    """Checks an observation of node `name` and returns it as a `jax.Array`.

    Args:
      name: the node's name (used in every message).
      value: the observation, broadcastable to `expected`.
      distribution: the node's numpyro distribution.
      expected: the node's shape `[n_samples, *batch_shape, *event_shape]`.
      mode: what an out-of-support value does: "warn", "error" or "ignore".
      float_indices: whether a categorical node holds its indices as floats (`dtype=float32`).

    Returns:
      The observation as a `jax.Array` (floats for continuous nodes).

    Raises:
      TypeError: a complex or non-numeric observation, or a float for a categorical node.
      ValueError: a shape that does not broadcast with `expected` or does not end in the event
        shape; NaN or inf values (concrete values only); out-of-support values when `mode` is
        "error" (concrete values only).
    """
    if not is_concrete(value):
        value = _check_kind(name, value, distribution, float_indices)
        _check_shape(name, value, expected, tuple(distribution.event_shape))
        return value
    with jax.ensure_compile_time_eval():     # concrete inputs are computed now, even while tracing
        value = _check_kind(name, value, distribution, float_indices)
        _check_shape(name, value, expected, tuple(distribution.event_shape))
        _check_finite(name, value)
        if mode != "ignore":
            _check_support(name, value, distribution, mode)
    return value


def _check_kind(name, value, distribution, float_indices):
    dtype = value.dtype if isinstance(value, jax.Array) else np.asarray(value).dtype
    if dtype.kind in "OSUV":
        raise TypeError(f"node {name!r}: observation of non-numeric dtype {dtype} "
                        f"({type(value).__name__})")
    value = jnp.asarray(value)
    if jnp.issubdtype(value.dtype, jnp.complexfloating):
        raise TypeError(f"node {name!r}: observation has complex dtype {value.dtype}")
    if (_is_index_valued(distribution) and not jnp.issubdtype(value.dtype, jnp.integer)
            and not float_indices):
        raise TypeError(f"node {name!r}: {type(distribution).__name__} takes integer category "
                        f"indices, but the observation has dtype {value.dtype}")
    is_discrete = getattr(distribution.support, "is_discrete", False)
    if not is_discrete and not jnp.issubdtype(value.dtype, jnp.floating):
        value = value.astype(jnp.result_type(float))
    return value


def _check_shape(name, value, expected, event_shape):
    try:
        jnp.broadcast_shapes(value.shape, expected)
    except ValueError:
        raise ValueError(f"node {name!r}: observation of shape {value.shape} does not broadcast with "
                         f"the node's shape {expected} (n_samples + batch_shape + event_shape)") from None
    if event_shape and value.shape[value.ndim - len(event_shape):] != event_shape:
        raise ValueError(f"node {name!r}: observation of shape {value.shape} must end in the "
                         f"event shape {event_shape}")


def _on_host(value) -> np.ndarray | None:
    """A NumPy view of a concrete array held in host memory (CPU), else None.

    Checks of such arrays run in NumPy: the same check in `jax.numpy` compiles a small program per
    shape on first use, about 40 ms each, which adds up in a first `sample` call.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    if not isinstance(value, jax.Array) or all(device.platform == "cpu" for device in value.devices()):
        return np.asarray(value)
    return None


def _check_finite(name, value):
    if not jnp.issubdtype(value.dtype, jnp.floating):
        return
    xp, array = (np, host) if (host := _on_host(value)) is not None else (jnp, value)
    if bool(xp.all(xp.isfinite(array))):
        return
    n_nan, n_inf = int(xp.sum(xp.isnan(array))), int(xp.sum(xp.isinf(array)))
    if n_nan or n_inf:
        raise ValueError(
            f"node {name!r}: the observation holds {n_nan} NaN and {n_inf} inf values (of "
            f"{value.size}). Missing data is masked explicitly, never by NaN: give "
            "a finite placeholder where a value is missing and mask its log-probability, e.g. "
            "bn.stochastic(name, numpyro_distribution.mask(is_present)), or a log_joint_fn")


def _check_support(name, value, distribution, mode):
    is_inside = _support_check(distribution.support, value)
    if isinstance(distribution, dist.MaskedDistribution):     # masked-out placeholders do not count
        mask = distribution._mask
        if not is_concrete(mask):
            return
        host = _on_host(mask)
        is_inside = is_inside | ~(host if host is not None else jnp.asarray(mask)).astype(bool)
    if not is_concrete(is_inside):   # traced parameters
        return
    is_inside = np.asarray(is_inside)
    n_outside = int(is_inside.size - np.count_nonzero(is_inside))
    if not n_outside:
        return
    message = (f"node {name!r}: {n_outside} of {is_inside.size} observed values lie outside the "
               f"support of {type(distribution).__name__} ({_describe(distribution.support)}); "
               "their log-probability is -inf (numpyro's validation, on by default, masks them) or, "
               "with numpyro's validation off, not a log-probability at all")
    if mode == "error":
        raise ValueError(message)
    warnings.warn(message + ". ppl.set_out_of_support('error') makes this an error, 'ignore' "
                  "silences it (e.g. grey-level pixels in a Bernoulli on purpose, with "
                  "numpyro.enable_validation(False))", OutOfSupportWarning, stacklevel=user_stacklevel())


def _support_check(support, value):
    """Whether each value lies in `support` (NumPy for values in host memory, see `_on_host`)."""
    xp, value = (np, host) if (host := _on_host(value)) is not None else (jnp, jnp.asarray(value))
    base = support.base_constraint if isinstance(support, constraints.independent) else support
    if base is constraints.simplex:
        # numpyro's simplex check uses a fixed 1e-6 tolerance, finer than float32 sums resolve
        tolerance = max(1e-6, 10 * value.shape[-1] * float(jnp.finfo(value.dtype).eps))
        inside = xp.all(value >= 0, -1) & (xp.abs(xp.sum(value, -1) - 1) < tolerance)
        if isinstance(support, constraints.independent):
            inside = xp.all(inside.reshape(inside.shape[:inside.ndim - support.reinterpreted_batch_ndims]
                                           + (-1,)), -1)
        return inside
    try:
        return support(value)
    except jax.errors.TracerArrayConversionError:   # traced parameters (numpyro's checks pick NumPy)
        return support(jnp.asarray(value))


_NAMED_SUPPORTS = [
    (constraints.boolean, "{0, 1}"), (constraints.positive, "x > 0"), (constraints.nonnegative, "x >= 0"),
    (constraints.simplex, "the probability simplex"), (constraints.unit_interval, "[0, 1]"),
    (constraints.nonnegative_integer, "non-negative integers"), (constraints.real, "finite reals"),
    (constraints.real_vector, "finite real vectors"),
]


def _describe(support) -> str:
    base = support.base_constraint if isinstance(support, constraints.independent) else support
    for constraint, text in _NAMED_SUPPORTS:
        if base is constraint:
            return text
    lower: Any = getattr(base, "lower_bound", None)
    upper: Any = getattr(base, "upper_bound", None)
    if np.size(lower) == 1 and np.size(upper) == 1 and upper is not None:
        kind = "integers" if isinstance(base, constraints.integer_interval) else "interval"
        return f"{kind} [{np.asarray(lower).item():g}, {np.asarray(upper).item():g}]"
    return type(base).__name__.lstrip("_")


def _is_index_valued(distribution) -> bool:
    return isinstance(distribution, (dist.CategoricalLogits, dist.CategoricalProbs))


def user_stacklevel() -> int:
    """The `warnings.warn` stack level of the caller's first frame outside `ppl` and `inference`.

    Called by the function that warns, so that the warning points at the user's line however deep
    inside the library it was raised."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(("ppl.", "inference.")):
        frame, level = frame.f_back, level + 1
    return level
