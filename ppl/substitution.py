"""`substitute`: replace node values while a model builds.

Inside `with ppl.substitute(substitute_fn):`, every node a `BayesianNet` creates is first offered to
`substitute_fn(site)`, which sees the node's name, distribution, shape and (for observed and
deterministic nodes) value, and returns a value to use instead, or None to leave the node as it is.
A latent node given a value is not sampled, so it needs no key. This is how `inference` sums a
discrete node out (each value of its support in turn, vectorised, see `inference.enumeration`) and
how `ppl.render` finds which node values each node is computed from. It is numpyro's `substitute`
handler in the DSL's terms.

Blocks nest: the innermost function is asked first, and an outer one only when it returns None.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, NamedTuple

import jax
import numpyro.distributions as dist

__all__ = ["NodeSite", "substitute"]

_STATE = threading.local()


class NodeSite(NamedTuple):
    """A node about to be created, as `substitute` functions see it.

    Attributes:
      name: the node's name.
      distribution: its numpyro distribution; None for a deterministic node.
      value: the observation (observed node), the computed value (deterministic node), or None (a
        latent node about to be sampled).
      shape: the node's shape, `[n_samples, *batch_shape, *event_shape]` for a stochastic node
        (no leading axis when `n_samples` is None), the value's shape for a deterministic one.
      is_observed: whether the value came from the observations.
      n_samples: the `n_samples` the node is drawn with, or None.
      group_ndims: how many rightmost batch axes its `log_prob` sums over (0 for deterministic).
      dtype: the dtype a sample is cast to (the node's `dtype=`), or None for the distribution's own.
    """

    name: str
    distribution: dist.Distribution | None
    value: jax.Array | None
    shape: tuple[int, ...]
    is_observed: bool
    n_samples: int | None = None
    group_ndims: int = 0
    dtype: Any = None


def _stack() -> list[Callable[[NodeSite], Any]]:
    if not hasattr(_STATE, "stack"):
        _STATE.stack = []
    return _STATE.stack


@contextlib.contextmanager
def substitute(substitute_fn: Callable[[NodeSite], Any]) -> Iterator[None]:
    """Within the block, `substitute_fn(site)` may replace the value of each node that is created.

    Args:
      substitute_fn: `fn(site: NodeSite) -> value or None`. A value replaces the observation, the
        sample or the deterministic value; it should broadcast with `site.shape`. None keeps the
        node as it would be.

    Example:
      >>> with ppl.substitute(lambda site: jnp.ones(site.shape) if site.name == "z" else None):
      ...     bn = model.observe(x=x)          # z is 1 everywhere and needs no key
    """
    if not callable(substitute_fn):
        raise TypeError(f"substitute needs a function of a NodeSite, got {type(substitute_fn).__name__}")
    stack = _stack()
    stack.append(substitute_fn)
    try:
        yield
    finally:
        stack.pop()


def is_active() -> bool:
    """Whether any `substitute` block is open (a cheap test before building a `NodeSite`)."""
    return bool(_stack())


def replacement(site: NodeSite) -> Any:
    """The value the open `substitute` blocks give `site` (innermost first), or None."""
    for substitute_fn in reversed(_stack()):
        value = substitute_fn(site)
        if value is not None:
            return value
    return None
