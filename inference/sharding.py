"""Placing MCMC chains and minibatches on a `jax.sharding.Mesh`: a "chains" axis and a "data" axis.

A mesh for a sampler names a "chains" axis (the chains are split over its devices; each device
runs its own chains, no communication), a "data" axis (each minibatch is split over its devices
and the log-joint gradient is reduced across them by XLA; positions are replicated), or both
(a 2-D mesh: each chain's minibatch is split over the "data" devices of its row). Other axes, if
any, replicate everything. JAX's own sharding is the engine: the program is one `jax.jit`,
arrays carry `NamedSharding`s and `lax.with_sharding_constraint` pins the chain and batch axes;
XLA inserts the collectives.

The programs are built on the mesh's devices and axis names with Auto axis types, so a mesh made
by `jax.make_mesh` (Explicit axes) works the same as `jax.sharding.Mesh(devices, names)`.

References:
  The JAX documentation, `Distributed arrays and automatic parallelization
  <https://docs.jax.dev/en/latest/notebooks/Distributed_arrays_and_automatic_parallelization.html>`_.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from inference.train_data import put

__all__ = ["ChainMesh", "auto_axes", "chain_mesh", "constrain_batch", "constrain_chains", "place"]


class ChainMesh(NamedTuple):
    """Where a sampler's arrays live on a mesh.

    Attributes:
      mesh: the mesh, with Auto axis types (hashable: part of a compiled program's key).
      chains: the sharding of arrays with a leading `[n_chains]` axis (split over "chains", if any).
      batch: the sharding of minibatches `[n_chains, batch_size, ...]` (chains over "chains",
        examples over "data").
      data: the sharding of the training set `[N, ...]`: rows over "data" when it divides N.
      replicated: every device holds the whole array.
    """

    mesh: Mesh
    chains: NamedSharding
    batch: NamedSharding
    data: NamedSharding
    replicated: NamedSharding


def auto_axes(mesh: Mesh) -> Mesh:
    """The same devices and axis names, every axis Auto (sharding propagated by XLA).

    The samplers index single chains inside their programs, which an Explicit axis (the default of
    `jax.make_mesh`) refuses to type-check on a sharded dimension; with Auto axes XLA propagates
    the placement of the inputs instead. Shared by the SG-MCMC driver and `inference.hmc.sharding`.

    Args:
      mesh: any `jax.sharding.Mesh`.

    Returns:
      `mesh` itself when every axis is already Auto, else a new mesh on the same devices.
    """
    if all(t == AxisType.Auto for t in mesh.axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * len(mesh.axis_names))


def chain_mesh(mesh: Any, n_chains: int, batch_size: int | None = None, n_examples: int = 0) -> ChainMesh:
    """Checks `mesh` for `n_chains` chains (and minibatches of `batch_size`) and returns the shardings.

    Args:
      mesh: a `jax.sharding.Mesh` with a "chains" axis, a "data" axis, or both.
      n_chains: the number of chains; must be divisible by the size of the "chains" axis.
      batch_size: examples per minibatch, or None without data; must be divisible by the size of
        the "data" axis.
      n_examples: N, the training set's size (0 without data).

    Returns:
      A `ChainMesh`.

    Raises:
      TypeError: `mesh` is not a `jax.sharding.Mesh`.
      ValueError: the mesh has neither axis; a "data" axis without data; `n_chains` or `batch_size`
        not divisible by the size of its axis (the message names the axis and both sizes).

    Example:
      >>> mesh = jax.make_mesh((2, 2), ("chains", "data"))
      >>> placement = chain_mesh(mesh, n_chains=8, batch_size=64, n_examples=1000)
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    names = mesh.axis_names
    if "chains" not in names and "data" not in names:
        raise ValueError(f"the mesh needs a 'chains' axis (to split chains) and/or a 'data' axis (to split "
                         f"minibatches); it has {names}")
    n_chain_devices = int(mesh.shape["chains"]) if "chains" in names else 1
    if n_chains % n_chain_devices:
        raise ValueError(f"n_chains={n_chains} must be divisible by the mesh's 'chains' axis of size "
                         f"{n_chain_devices}, so that every device runs the same number of chains")
    n_data_devices = int(mesh.shape["data"]) if "data" in names else 1
    if "data" in names and batch_size is None:
        raise ValueError(f"the mesh's 'data' axis (size {n_data_devices}) splits minibatches, but there is "
                         "no data: give a mesh with a 'chains' axis only")
    if batch_size is not None and batch_size % n_data_devices:
        raise ValueError(f"batch_size={batch_size} must be divisible by the mesh's 'data' axis of size "
                         f"{n_data_devices}, so that every device gets the same number of examples")
    mesh = auto_axes(mesh)
    chains = "chains" if "chains" in names else None
    data = "data" if "data" in names else None
    rows = data if n_examples and n_examples % n_data_devices == 0 else None
    return ChainMesh(mesh, NamedSharding(mesh, P(chains)), NamedSharding(mesh, P(chains, data)),
                     NamedSharding(mesh, P(rows)), NamedSharding(mesh, P()))


def constrain_chains(tree: Any, placement: ChainMesh | None) -> Any:
    """Inside a jitted program: pins every leaf's leading `[n_chains]` axis to the "chains" axis."""
    return tree if placement is None else lax.with_sharding_constraint(tree, placement.chains)


def constrain_batch(tree: Any, placement: ChainMesh | None) -> Any:
    """Inside a jitted program: pins minibatches `[n_chains, batch_size, ...]` to ("chains", "data")."""
    return tree if placement is None else lax.with_sharding_constraint(tree, placement.batch)


def place(tree: Any, sharding: NamedSharding | None) -> Any:
    """Puts `tree` on the mesh (`inference.train_data.put`; None: the default device)."""
    return put(tree, sharding) if sharding is not None else tree

