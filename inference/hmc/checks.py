"""Argument checks and run-level warnings shared by `HMC`, `NUTS` and `ChEES` (`inference.hmc.base`).

Everything here runs on the host before (or after) the compiled run: the starting-point strategy,
the node names `sample` returns, the chain axis and count, the cache keys of resumed states, and
the warning about stuck or diverging chains.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inference.deprecation import caller_stacklevel
from inference.hmc.initialization import InitStrategy, init_to_uniform
from inference.mcmc_result import MCMCResult

__all__ = ["MAX_DIVERGENT_FRACTION", "MIN_ACCEPTANCE", "abstract_tree", "check_chain_axis", "infer_n_chains",
           "resolve_strategy", "resume_key", "return_node_names", "strong", "warn_on_bad_chains"]

MIN_ACCEPTANCE = 0.05      # a chain accepting less than this is stuck
MAX_DIVERGENT_FRACTION = 0.01


def warn_on_bad_chains(result: MCMCResult, name: str) -> MCMCResult:
    """Warns, naming the chains, when a chain's mean acceptance is below `MIN_ACCEPTANCE` or more than
    `MAX_DIVERGENT_FRACTION` of its transitions diverged.

    Args:
      result: a sampler's `MCMCResult`; `result.info` has `acceptance_rate` and `is_divergent`
        of shape `[n_chains, n_samples]`.
      name: the sampler's name, used in the message.

    Returns:
      `result` unchanged (nothing is checked under a JAX transformation, where values are abstract).
    """
    info = result.info
    if isinstance(info.acceptance_rate, jax.core.Tracer):
        return result
    acceptance = np.asarray(info.acceptance_rate).mean(axis=-1)
    divergent = np.asarray(info.is_divergent).mean(axis=-1)
    stuck = np.flatnonzero(~(acceptance >= MIN_ACCEPTANCE)).tolist()    # NaN counts as stuck
    diverging = np.flatnonzero(divergent > MAX_DIVERGENT_FRACTION).tolist()
    if stuck:
        rates = np.round(acceptance[stuck], 3).tolist()
        warnings.warn(f"{name}: chain(s) {stuck} accepted less than {MIN_ACCEPTANCE:.0%} of proposals (mean "
                      f"acceptance {rates}): they barely moved and their draws are not posterior samples. "
                      "Check the start, the step size and the warmup.", UserWarning,
                      stacklevel=caller_stacklevel())
    if diverging:
        fractions = np.round(divergent[diverging], 3).tolist()
        warnings.warn(f"{name}: chain(s) {diverging} had divergent transitions in more than "
                      f"{MAX_DIVERGENT_FRACTION:.0%} of draws ({fractions}): "
                      "the posterior has regions the integrator cannot follow; estimates may be biased. "
                      "Reparameterise, or raise target_acceptance_rate.", UserWarning,
                      stacklevel=caller_stacklevel())
    return result


def resolve_strategy(init_strategy: InitStrategy | None, init: Mapping[str, Any] | None
                     ) -> tuple[InitStrategy, dict]:
    """`(strategy, init values)`: `init_to_value(values)` is the same as `init=values`.

    Raises:
      TypeError: `init_strategy` is not an `InitStrategy`.
      ValueError: both `init` and `init_to_value(values)` given.
    """
    init = dict(init or {})
    strategy = init_to_uniform() if init_strategy is None else init_strategy
    if not isinstance(strategy, InitStrategy):
        raise TypeError("init_strategy must be one of inference.init_to_uniform(), init_to_median(), "
                        f"init_to_sample(), init_to_value(values); got {type(strategy).__name__}")
    if strategy.kind == "value":
        if init:
            raise ValueError("give starting values either as init= or as init_to_value(values), not both")
        init, strategy = dict(strategy.values or {}), init_to_uniform()
    return strategy, init


def return_node_names(return_nodes: str | Iterable[str] | None, summary: Mapping[str, Any],
                      deterministic: Mapping[str, Any]) -> tuple[str, ...]:
    """The node names `sample` returns (latents first), checked against the model's nodes.

    Args:
      return_nodes: a name, names, or None for every latent and deterministic node.
      summary: latent name -> its shape/dtype; deterministic: deterministic name -> its shape/dtype.

    Raises:
      ValueError: a name that is neither a latent nor a deterministic node (lists both).
    """
    if return_nodes is None:
        return (*summary, *deterministic)
    names = (return_nodes,) if isinstance(return_nodes, str) else tuple(return_nodes)
    unknown = sorted(set(names) - set(summary) - set(deterministic))
    if unknown:
        raise ValueError(f"return_nodes {unknown} are not latent or deterministic nodes of the model; "
                         "those are "
                         f"{list(summary)} and {list(deterministic)}")
    return names


def strong(tree: Any) -> Any:
    """Arrays without weak types (a Python-number init would otherwise key its own program)."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.result_type(x)), tree)


def resume_key(resume: Any) -> Any:
    """The part of the program's cache key that a resumed state fixes (None without one)."""
    return None if resume is None else abstract_tree(resume)


def abstract_tree(tree: Any) -> Any:
    """`(treedef, leaf types)`: the shapes, dtypes and structure a jitted program is traced for."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(jax.typeof(jnp.asarray(x)) for x in leaves)


def check_chain_axis(positions: Any) -> int:
    """The common leading `[n_chains]` size of every leaf of `positions`.

    Raises:
      ValueError: no leaves, a scalar leaf, or leaves with different leading sizes (lists the shapes).
    """
    leaves = jax.tree_util.tree_leaves(positions)
    if not leaves:
        raise ValueError("init_position has no arrays")
    n_chains = jnp.shape(leaves[0])[0] if jnp.ndim(leaves[0]) else None
    if n_chains is None or any(jnp.ndim(x) == 0 or jnp.shape(x)[0] != n_chains for x in leaves):
        raise ValueError("every leaf of init_position needs the same leading [n_chains] axis, got shapes "
                         f"{[jnp.shape(x) for x in leaves]}")
    return int(n_chains)


def infer_n_chains(summary: Mapping[str, Any], init: Mapping[str, Any], n_chains: int | None,
                   min_chains: int, name: str) -> int:
    """The number of chains: `n_chains`, else the leading axis of a per-chain `init`, else
    `max(1, min_chains)`.

    Raises:
      ValueError: `init` names unknown latents or has a wrong shape (names the latent and both
        shapes), per-chain axes disagree with each other or with `n_chains`, or fewer than
        `min_chains` chains (`name` is the sampler's, for the message).
    """
    unknown = sorted(set(init) - set(summary))
    if unknown:
        raise ValueError(f"init gives {unknown}, but the latents are {list(summary)}")
    found = set()
    for latent, value in init.items():
        shape, expected = tuple(jnp.shape(value)), summary[latent].shape
        if shape == expected:
            continue
        if len(shape) == len(expected) + 1 and shape[1:] == expected:
            found.add(shape[0])
        else:
            raise ValueError(f"init[{latent!r}] has shape {shape}; expected the latent's shape {expected} "
                             f"or [n_chains, *{expected}]")
    if len(found) > 1 or (found and n_chains is not None and found != {n_chains}):
        raise ValueError(f"init has per-chain axes of sizes {sorted(found)} but n_chains={n_chains}")
    n_chains = n_chains if n_chains is not None else (found.pop() if found else max(1, min_chains))
    if isinstance(n_chains, bool) or not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
        raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
    if n_chains < min_chains:
        raise ValueError(f"{name} needs at least {min_chains} chains (cross-chain adaptation), got "
                         f"{n_chains}")
    return int(n_chains)


