"""Argument checks for `inference.fit`, run before anything is traced or compiled."""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_int", "check_loss_fn", "check_params", "strong"]


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not is_int or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")
    return int(value)


def strong(tree: Any) -> Any:
    """Leaves as jax arrays with strong dtypes (a weakly typed scan carry would change type).

    Only weakly typed arrays are copied; host values are moved to the device.
    """
    def strong(x):
        if isinstance(x, jax.Array):
            return jnp.array(x, dtype=x.dtype) if x.weak_type else x
        return jnp.asarray(np.asarray(x))
    return jax.tree.map(strong, tree)


def check_params(params: Any) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError("params has no arrays to train")
    for path, leaf in leaves:
        dtype = getattr(leaf, "dtype", np.asarray(leaf).dtype)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(f"params leaf {jax.tree_util.keystr(path)} has dtype {dtype}; every trained "
                            "parameter must be a float array (keep integer or static parts out of params, "
                            "e.g. with ppl.nn.split_module or equinox.partition)")


def _spec(tree: Any) -> tuple:
    """A hashable description of a pytree: its structure and each leaf's shape and dtype."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in leaves)


@functools.lru_cache(maxsize=64)
def _abstract_outputs(loss_fn, params_spec, key_spec, batch_spec, state_spec):
    """`jax.eval_shape` of `loss_fn` on the described arguments (cached: a later fit does not retrace)."""
    args = [treedef.unflatten(leaves) for treedef, leaves in (params_spec, key_spec, batch_spec, state_spec)]
    return jax.eval_shape(loss_fn, *args)


def check_loss_fn(loss_fn, params, key, batch_spec, state) -> tuple[Any, tuple]:
    """Runs `loss_fn` abstractly once; returns (cost dtype, ((metric name, dtype), ...)).

    Raises:
      TypeError, ValueError: the outputs are not `(cost, (state, metrics))` with a float scalar
        cost, a state of the input state's structure, shapes and dtypes, and a dict of scalars.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    out = _abstract_outputs(loss_fn, _spec(params), _spec(key), _spec(batch_spec), _spec(state))
    shape_of = lambda x: jax.tree.map(lambda a: (a.shape, str(a.dtype)), x)  # noqa: E731
    is_pair = lambda x: isinstance(x, tuple) and len(x) == 2  # noqa: E731
    if not (is_pair(out) and is_pair(out[1])):
        raise TypeError("loss_fn(params, key, batch, state) must return (cost, (state, metrics)), got "
                        f"{shape_of(out)}")
    cost, (new_state, metrics) = out
    if not (hasattr(cost, "shape") and cost.shape == () and jnp.issubdtype(cost.dtype, jnp.inexact)):
        raise TypeError(f"loss_fn's cost must be a float scalar (shape []), got {shape_of(cost)}: "
                        "reduce it over the batch and particle axes (e.g. jnp.mean)")
    in_state = jax.tree.map(lambda a: (np.shape(a), str(jnp.result_type(a))), state)
    if (jax.tree.structure(new_state) != jax.tree.structure(state)  # type: ignore[operator]  # jaxlib has no PyTreeDef stub
            or shape_of(new_state) != in_state):
        raise ValueError(f"loss_fn must return a state with the structure, shapes and dtypes of the state "
                         f"it is given (a scan carry): given {in_state}, returned {shape_of(new_state)}")
    metrics = {} if metrics is None else metrics
    if not isinstance(metrics, Mapping) or any(getattr(v, "shape", None) != () for v in metrics.values()):
        raise TypeError(f"loss_fn's metrics must be a dict of scalars (or None), got {shape_of(metrics)}")
    return cost.dtype, tuple((str(name), metrics[name].dtype) for name in sorted(metrics))
