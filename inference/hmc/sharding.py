"""Chains across devices: the one place the MCMC samplers place their leading `[n_chains]` axis.

`HMC`, `NUTS` and `ChEES` run every chain independently under `jax.vmap`, so splitting the chain
axis across devices needs no collective beyond ChEES' cross-chain means, which XLA inserts: the
arrays a run starts from (keys, positions, resumed states) are placed with a `NamedSharding` over
the mesh's "chains" axis and the compiled program follows that placement.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from inference.sharding import auto_axes

__all__ = ["CHAINS_AXIS", "check_chain_mesh", "shard_chains"]

CHAINS_AXIS = "chains"


def check_chain_mesh(mesh: Mesh, n_chains: int, name: str = "MCMC") -> None:
    """Checks that `mesh` has a "chains" axis whose size divides `n_chains`.

    Args:
      mesh: a `jax.sharding.Mesh`; other axes (e.g. "data") replicate the chains.
      n_chains: the number of chains of the run.
      name: the sampler's name, used in the messages.

    Raises:
      TypeError: `mesh` is not a `jax.sharding.Mesh`.
      ValueError: no "chains" axis (names the mesh's axes), or `n_chains` not divisible by its size
        (names both sizes).
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{name}: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if CHAINS_AXIS not in mesh.axis_names:
        raise ValueError(f"{name}: the mesh has axes {tuple(mesh.axis_names)}; chains are split along an "
                         f"axis named {CHAINS_AXIS!r}")
    size = int(mesh.shape[CHAINS_AXIS])
    if n_chains % size:
        raise ValueError(f"{name}: n_chains={n_chains} is not divisible by the size {size} of the mesh's "
                         f"{CHAINS_AXIS!r} axis; use a multiple of {size} chains")


def shard_chains(tree: Any, n_chains: int, mesh: Mesh | None = None) -> Any:
    """Places the leading `[n_chains]` axis of every leaf of `tree` across devices.

    Args:
      tree: a pytree of arrays with a leading `[n_chains]` axis.
      n_chains: that axis' size.
      mesh: a mesh with a "chains" axis (checked with `check_chain_mesh`). None: every device on
        one axis when there are several and they divide `n_chains`, else `tree` stays where it is.

    Returns:
      `tree` with its leaves sharded along the "chains" axis (replicated along any other).

    Example:
      >>> mesh = jax.make_mesh((jax.device_count(),), ("chains",))
      >>> keys = shard_chains(jax.random.split(key, 8), 8, mesh)
    """
    if mesh is None:
        devices = jax.devices()
        if len(devices) < 2 or n_chains % len(devices):
            return tree
        mesh = Mesh(np.asarray(devices), (CHAINS_AXIS,))
    else:
        check_chain_mesh(mesh, n_chains)
        mesh = auto_axes(mesh)  # the samplers index single chains: Explicit axes would refuse it
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(CHAINS_AXIS)))
