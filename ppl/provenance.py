"""Which inputs of a JAX function each of its outputs is computed from, found by tracing.

`provenance(fn, inputs)` traces `fn` once with `jax.make_jaxpr` (abstract values: nothing is
computed) and follows the data flow of the program: an output depends on an input when some chain
of operations leads from one to the other. Calls to jitted functions and custom-derivative
functions are followed inside; other operations with inner programs (`scan`, `while_loop`, `cond`)
count each output as computed from all their inputs, which can only add dependencies, never miss
one. Closed-over constants (parameters) carry no input. `ppl.render` uses it to find the edges of a
model graph.

References:
  Wingate, Goodman, Stuhlmüller and Siskind, `Nonstandard Interpretations of Probabilistic Programs
  for Efficient Inference <https://papers.nips.cc/paper/4309>`_, 2011 (provenance tracking).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
from jax.extend import core

__all__ = ["provenance"]


def provenance(fn: Callable[[Mapping[str, Any]], Sequence[jax.Array]],
               inputs: Mapping[str, Any]) -> list[frozenset[str]]:
    """The names of the inputs each output of `fn` depends on.

    Args:
      fn: a function of a dict of named inputs that returns a flat sequence of arrays.
      inputs: `{name: array or jax.ShapeDtypeStruct}`; only shapes and dtypes are used.

    Returns:
      One frozenset of input names per output of `fn`, in order.

    Example:
      >>> provenance(lambda v: [v["a"] * 2, v["a"] + v["b"], jnp.ones(3)],
      ...            {"a": jnp.ones(3), "b": jnp.ones(3)})
      [frozenset({'a'}), frozenset({'a', 'b'}), frozenset()]
    """
    names = sorted(inputs)
    leaves = [jax.tree_util.tree_leaves(inputs[name]) for name in names]
    labels = [frozenset({name}) for name, group in zip(names, leaves, strict=True) for _ in group]
    closed = jax.make_jaxpr(lambda *flat: list(fn(_unflatten(names, leaves, flat))))(
        *[leaf for group in leaves for leaf in group])
    return _track(closed.jaxpr, labels)


def _unflatten(names, leaves, flat):
    values, start = {}, 0
    for name, group in zip(names, leaves, strict=True):
        values[name] = flat[start] if len(group) == 1 else list(flat[start:start + len(group)])
        start += len(group)
    return values


def _track(jaxpr, input_labels: Sequence[frozenset]) -> list[frozenset]:
    """Propagates label sets from `jaxpr`'s inputs to its outputs."""
    labels: dict[Any, frozenset] = dict(zip(jaxpr.invars, input_labels, strict=True))

    def read(var):
        return frozenset() if isinstance(var, core.Literal) else labels.get(var, frozenset())

    for eqn in jaxpr.eqns:
        given = [read(var) for var in eqn.invars]
        inner = _inner_program(eqn)
        if inner is not None:
            produced = _track(inner, given)
        else:
            produced = [frozenset().union(*given)] * len(eqn.outvars)
        for var, label in zip(eqn.outvars, produced, strict=True):
            labels[var] = label
    return [read(var) for var in jaxpr.outvars]


def _inner_program(eqn):
    """The inner program of a call-like operation whose inputs and outputs are its own, or None."""
    for inner in core.jaxprs_in_params(eqn.params):
        inner = getattr(inner, "jaxpr", inner)
        if len(inner.invars) == len(eqn.invars) and len(inner.outvars) == len(eqn.outvars):
            return inner
    return None
