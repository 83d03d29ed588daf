"""Training data for `inference.fit`: arrays batched on the device, or batches made by the user,
placed on a `jax.sharding.Mesh` with a "data" axis when one is given.

Arrays (a pytree whose leaves share a leading data axis N) are moved to the device once; every
epoch draws its minibatches inside the compiled program (`inference.train_step.batch_indices`).
Batches from a callable `data(epoch)` or an iterator are stacked on the host, one epoch at a time,
into `[n_steps, batch_size, ...]` arrays that the epoch's scan runs over.

With a mesh, parameters are replicated and each batch is split over the "data" axis; XLA inserts
the gradient all-reduce. In a multi-process run (`jax.distributed.initialize`), `shard_data`
assembles each process's own rows into one global array, and batches from a callable or iterator
are each process's part of the global batch.

References:
  The JAX documentation, `Distributed arrays and automatic parallelization
  <https://docs.jax.dev/en/latest/notebooks/Distributed_arrays_and_automatic_parallelization.html>`_
  and `Multi-process environments <https://docs.jax.dev/en/latest/multi_process.html>`_.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["DataSource", "check_process_sizes", "prepare_data", "put", "shard_data", "to_host"]


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def put(tree: Any, sharding: jax.sharding.Sharding | None) -> Any:
    """Places every leaf with `sharding` (None: the default device), across processes when several.

    Leaves that are already global arrays of a multi-process run are kept as they are.
    """
    def one(x):
        if _is_key(x):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        if sharding is None:
            return jnp.asarray(x)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.tree.map(one, tree)


def to_host(tree: Any) -> Any:
    """Leaves as numpy arrays, whole: a replicated global array of a multi-process run is read from
    this process's copy, a split one (e.g. chains over processes) gathered from every process (a
    collective: every process calls `to_host` on the same arrays, in the same order)."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if not x.is_fully_replicated:
                return np.asarray(multihost_utils.process_allgather(x, tiled=True))
            x = x.addressable_data(0)
        return np.asarray(x)
    return jax.tree.map(one, tree)


def shard_data(data: Any, mesh: Mesh) -> Any:
    """Global arrays, split over the mesh's "data" axis, from each process's own rows.

    Every process passes its own rows (the same number in each); the global array holds process
    0's rows, then process 1's, and so on (the order of `jax.devices()`). In a single process this
    is `jax.device_put(data, NamedSharding(mesh, P("data")))`.

    Args:
      data: a pytree of arrays `[n_local, ...]`, this process's rows.
      mesh: a `jax.sharding.Mesh` with a "data" axis.

    Returns:
      The same pytree of global arrays (`jax.Array`) `[n_local * n_processes, ...]`.

    Raises:
      ValueError: the mesh has no "data" axis, leaves with different leading sizes, or processes
        with different numbers of rows (each named; raised in every process).

    Example:
      >>> jax.distributed.initialize()
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))
      >>> x = shard_data(load_my_rows(jax.process_index()), mesh)
      >>> result = inference.fit(key, loss_fn, params, optax.adam(1e-3), x, n_epochs=10,
      ...                        batch_size=128, mesh=mesh)
    """
    _check_mesh(mesh)
    check_process_sizes(_leading_size(data, "data"), "shard_data: the rows")
    sharding = NamedSharding(mesh, P("data"))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), data)


def check_process_sizes(n: int, what: str) -> None:
    """Checks that every process of a multi-process run gives the same size `n` (nothing in one process).

    A collective (every process calls it, in the same order): without it, shards of different sizes
    meet in the first collective as a crash of the transport (gloo: "Received data size doesn't
    match expected size") or a hang, far from the cause.

    Args:
      n: this process's size (e.g. its number of rows).
      what: what `n` counts, for the message.

    Raises:
      ValueError: the sizes differ, each process's size named (raised in every process).
    """
    if jax.process_count() == 1:
        return
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray(n, np.int64))).reshape(-1).tolist()
    if len(set(sizes)) > 1:
        listed = ", ".join(f"process {i}: {size}" for i, size in enumerate(sizes))
        raise ValueError(f"{what} must have the same size in every process; got {listed}")


def _check_mesh(mesh) -> int:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if "data" not in mesh.axis_names:
        raise ValueError(f"the mesh needs a 'data' axis to split batches over; it has {mesh.axis_names}")
    return int(mesh.shape["data"])


def _leading_size(tree: Any, what: str) -> int:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise ValueError(f"{what} has no arrays")
    sizes = {}
    for path, leaf in leaves:
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(f"{what} leaf {jax.tree_util.keystr(path)} is a {type(leaf).__name__}, not an "
                            "array; pass a pytree of arrays, a callable data(epoch) returning batches, or "
                            "an iterator of batches")
        if leaf.ndim == 0:
            raise ValueError(f"{what} leaf {jax.tree_util.keystr(path)} is a scalar; every array needs a "
                             "leading data axis")
        sizes[jax.tree_util.keystr(path) or "data"] = leaf.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"every {what} array needs the same leading (data) axis; got sizes {sizes}")
    return next(iter(sizes.values()))


class DataSource(NamedTuple):
    """Where each epoch's data come from.

    Attributes:
      n_examples: N for arrays batched on the device; None for batches made by the user.
      batch_size: examples per step (global, over all processes).
      n_steps: steps per epoch.
      batch_spec: one batch as a pytree of `jax.ShapeDtypeStruct`.
      epoch_data: `epoch -> device pytree` (the arrays, or the epoch's stacked batches), or None
        when an iterator ran out.
    """

    n_examples: int | None
    batch_size: int
    n_steps: int
    batch_spec: Any
    epoch_data: Callable[[int], Any]


def prepare_data(data: Any, batch_size: int | None, *, drop_remainder: bool, steps_per_epoch: int | None,
                 mesh: Mesh | None, first_epoch: int) -> DataSource:
    """Checks `data` and returns its `DataSource` (see `inference.fit` for the arguments).

    Raises:
      ValueError, TypeError: arrays without a common leading axis, a `batch_size` outside [1, N] or
        not divisible by the mesh's "data" axis, batches of different shapes, an iterator without
        `steps_per_epoch`, or an empty first epoch.
    """
    n_devices = 1 if mesh is None else _check_mesh(mesh)
    if callable(data) or hasattr(data, "__next__"):
        return _batch_source(data, batch_size, steps_per_epoch, mesh, n_devices, first_epoch)
    if steps_per_epoch is not None:
        raise ValueError("steps_per_epoch is for batches from a callable or iterator; with arrays an epoch "
                         "has N // batch_size steps (ceil(N / batch_size) with drop_remainder=False)")
    n = _leading_size(data, "data")
    if mesh is not None:
        check_process_sizes(n, "fit: the data (all N rows in every process, or shard_data's global arrays)")
    if (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
            or not 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an int in [1, {n}] (the number of examples), got "
                         f"{batch_size!r}")
    batch_size = int(batch_size)
    if batch_size % n_devices:
        raise ValueError(f"batch_size={batch_size} must be divisible by the mesh's 'data' axis ({n_devices} "
                         "devices), so that every device gets the same number of examples")
    n_steps = n // batch_size if drop_remainder else -(-n // batch_size)
    sharding = None if mesh is None else NamedSharding(mesh, P("data") if n % n_devices == 0 else P())
    placed = put(data, sharding)
    spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch_size, *a.shape[1:]), a.dtype), placed)
    return DataSource(n, batch_size, n_steps, spec, lambda epoch: placed)


def _host_batches(data, epoch: int, steps_per_epoch: int | None) -> list:
    source = data(epoch) if callable(data) else data
    iterator = iter(source)
    return list(itertools.islice(iterator, steps_per_epoch) if steps_per_epoch else iterator)


def _stack(batches: list, epoch: int, reference: Any) -> Any:
    def shapes(batch):
        return jax.tree.map(lambda a: (tuple(np.shape(a)), str(np.asarray(a).dtype if not hasattr(a, "dtype")
                                                              else a.dtype)), batch)

    expected = shapes(reference)
    for step, batch in enumerate(batches):
        if (jax.tree.structure(batch) != jax.tree.structure(reference)  # type: ignore[operator]  # jaxlib has no PyTreeDef stub
                or shapes(batch) != expected):
            raise ValueError(f"epoch {epoch}, step {step}: the batch has shapes {shapes(batch)}, but the "
                             f"first batch had {expected}; every batch must have the same shapes (drop a "
                             "ragged last batch, e.g. drop_last=True in a data loader)")
    stack = np.stack if jax.process_count() > 1 else jnp.stack
    return jax.tree.map(lambda *xs: stack(xs), *batches)


def _to_global(stacked: Any, sharding) -> Any:
    if sharding is None or jax.process_count() == 1:
        return put(stacked, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), stacked)


def _batch_source(data, batch_size, steps_per_epoch, mesh, n_devices, first_epoch) -> DataSource:
    if not callable(data) and steps_per_epoch is None:
        raise ValueError("an iterator of batches needs steps_per_epoch (how many batches make an epoch)")
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
    first = _host_batches(data, first_epoch, steps_per_epoch)
    if not first or (steps_per_epoch and len(first) < steps_per_epoch):
        raise ValueError(f"data gave {len(first)} batches for epoch {first_epoch}, need "
                         f"{steps_per_epoch or 'at least 1'}")
    reference, n_steps = first[0], len(first)
    sharding = None if mesh is None else NamedSharding(mesh, P(None, "data"))
    device = _to_global(_stack(first, first_epoch, reference), sharding)
    spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), device)
    size = _leading_size(spec, "batch")
    if batch_size is not None and batch_size != size:
        raise ValueError(f"batch_size={batch_size} but the batches have {size} examples (leave "
                         "batch_size=None for batches made by a callable or iterator)")
    if size % n_devices:
        raise ValueError(f"batches of {size} examples cannot be split over the mesh's {n_devices} devices")
    cache = {first_epoch: device}

    def epoch_data(epoch: int):
        if epoch in cache:
            return cache.pop(epoch)
        batches = _host_batches(data, epoch, n_steps)
        if len(batches) < n_steps:
            warnings.warn(f"fit: the data gave {len(batches)} of the {n_steps} batches of epoch {epoch}; "
                          "training stops after the last complete epoch", stacklevel=3)
            return None
        return _to_global(_stack(batches, epoch, reference), sharding)

    return DataSource(None, size, n_steps, spec, epoch_data)
