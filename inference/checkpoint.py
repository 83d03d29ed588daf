"""Checkpoints: any pytree of arrays saved and restored atomically, with orbax-checkpoint underneath.

`save_checkpoint(path, pytree)` writes a directory that appears under its final name only when it
is complete (orbax writes to a temporary name and renames it), so an interrupted save never leaves
a half-written checkpoint: a reader sees the previous one or the new one. `load_checkpoint(path,
like=...)` restores it with `like`'s tree structure (NamedTuples, optax states, `HMCState`, ...),
dtypes and shardings, and checks that every leaf's shape and dtype match first.

On disk a checkpoint is an orbax composite of two items: `pytree` (the arrays, one tensorstore
each, typed PRNG keys included) and `meta` (JSON: the format version, the shapes of zero-size
leaves, which orbax cannot store, and the caller's metadata). `inference.fit` writes the same layout
under `checkpoint_dir/<epoch>/` through orbax's `CheckpointManager` (asynchronous: only the copy to
host memory blocks training); `load_checkpoint(checkpoint_dir)` reads the newest epoch.

orbax-checkpoint is an optional dependency (`pip install ppl-jax[checkpoint]`), imported on first use.

References:
  The orbax-checkpoint documentation, `Checkpointing PyTrees of arrays
  <https://orbax.readthedocs.io/en/latest/guides/checkpoint/checkpointing_pytrees.html>`_.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from ppl.nn import leaf_name as _leaf_name

__all__ = ["TrainCheckpoints", "latest_checkpoint", "load_checkpoint", "load_checkpoint_metadata",
           "save_checkpoint"]

_FORMAT = "ppl-checkpoint"
_VERSION = 1


def _ocp():
    try:
        import orbax.checkpoint as ocp
    except ImportError as error:
        raise ImportError("checkpoints need orbax-checkpoint, an optional dependency: "
                          "pip install orbax-checkpoint (or ppl-jax[checkpoint])") from error
    return ocp


def _encode(pytree: Any) -> tuple[Any, dict]:
    """Leaves made storable: numpy scalars to 0-d arrays; zero-size arrays replaced by None and
    described in the returned `{name: [shape, dtype]}` (orbax cannot write them)."""
    zero_size = {}

    def encode(path, leaf):
        if isinstance(leaf, (np.generic, bool, int, float, complex)):
            leaf = np.asarray(leaf)
        if not isinstance(leaf, (np.ndarray, jax.Array)):
            raise TypeError(f"checkpoint leaf {_leaf_name(path)!r} is a {type(leaf).__name__}; a checkpoint "
                            "holds arrays (and Python or numpy scalars) only")
        if leaf.size == 0:
            zero_size[_leaf_name(path)] = [list(leaf.shape), str(leaf.dtype)]
            return None
        return leaf

    return jax.tree_util.tree_map_with_path(encode, pytree), zero_size


def _decode(restored: Any, zero_size: Mapping[str, list], like: Any = None) -> Any:
    """Puts the zero-size leaves back (from `like` when given, else from their stored shapes)."""
    is_none = lambda x: x is None  # noqa: E731

    def decode(path, leaf, like_leaf=None):
        name = _leaf_name(path)
        if leaf is not None or name not in zero_size:
            return leaf
        if like_leaf is None:
            shape, dtype = zero_size[name]
            return np.zeros(shape, dtype)
        zeros_like = jax.numpy.zeros_like if isinstance(like_leaf, jax.Array) else np.zeros_like
        return zeros_like(like_leaf)

    if like is None:
        return jax.tree_util.tree_map_with_path(decode, restored, is_leaf=is_none)
    paths, treedef = jax.tree_util.tree_flatten_with_path(like, is_leaf=is_none)
    restored_leaves = jax.tree_util.tree_flatten(restored, is_leaf=is_none)[0]
    pairs = zip(paths, restored_leaves, strict=True)
    leaves = [decode(path, leaf, like_leaf) for (path, like_leaf), leaf in pairs]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _stored_signature(leaf) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) as stored: a typed PRNG key is stored as its key data."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    leaf = leaf if hasattr(leaf, "dtype") else np.asarray(leaf)
    return tuple(np.shape(leaf)), str(leaf.dtype)


def _check_like(saved: Any, like: Any, zero_size: Mapping[str, list], where: str) -> None:
    """Compares the stored leaves (orbax metadata) with `like`'s names, shapes and dtypes."""
    stored = {_leaf_name(p): (tuple(m.shape), str(m.dtype))
              for p, m in jax.tree_util.tree_flatten_with_path(saved)[0]}
    stored.update({name: (tuple(shape), dtype) for name, (shape, dtype) in zero_size.items()})
    wanted = {_leaf_name(p): _stored_signature(x) for p, x in jax.tree_util.tree_flatten_with_path(like)[0]}
    missing, extra = sorted(set(wanted) - set(stored)), sorted(set(stored) - set(wanted))
    if missing or extra:
        raise ValueError(f"{where}: `like` does not match the checkpoint: leaves only in `like`: {missing}; "
                         f"only in the checkpoint: {extra}")
    for name, (shape, dtype) in wanted.items():
        if stored[name] != (shape, dtype):
            raise ValueError(f"{where}: leaf {name!r} is {stored[name][1]}{list(stored[name][0])} in the "
                             f"checkpoint but {dtype}{list(shape)} in `like`")


def _composite_args(pytree: Any, metadata: Mapping[str, Any] | None):
    ocp = _ocp()
    encoded, zero_size = _encode(pytree)
    meta = {"format": _FORMAT, "version": _VERSION, "zero_size": zero_size, "user": dict(metadata or {})}
    return ocp.args.Composite(pytree=ocp.args.StandardSave(encoded), meta=ocp.args.JsonSave(meta))


def _restore_args(like: Any):
    ocp = _ocp()
    target = None if like is None else _encode(like)[0]
    return ocp.args.Composite(pytree=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())


def _checkpointer():
    ocp = _ocp()
    handler = ocp.CompositeCheckpointHandler(pytree=ocp.StandardCheckpointHandler(),
                                             meta=ocp.JsonCheckpointHandler())
    return ocp.Checkpointer(handler)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in a `fit` checkpoint directory, or None when there is none.

    Step directories are named by the number of epochs completed; temporary directories of an
    interrupted save are ignored.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    steps = [int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()
             and (p / "meta").exists() and (p / "pytree").exists()]
    return directory / str(max(steps)) if steps else None


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path).absolute()
    if (path / "meta").is_dir() and (path / "pytree").is_dir():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint at {path} (expected a directory written by save_checkpoint, "
                                "or a fit checkpoint_dir holding numbered epoch directories)")
    return latest


def save_checkpoint(path: str | os.PathLike, pytree: Any, *, metadata: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Saves a pytree of arrays to the directory `path`, atomically.

    Anything made of arrays works: model parameters, an optax state, `TrainResult` fields, an
    `HMCState` or `MCMCResult.state` NamedTuple, typed PRNG keys, sharded global arrays (every
    process calls it in a multi-host run; each writes its own shards).

    Args:
      path: the checkpoint directory to create.
      pytree: the arrays (jax or numpy arrays, Python or numpy scalars; None leaves are kept).
      metadata: optional JSON-serialisable dict stored beside the arrays
        (`load_checkpoint_metadata` reads it back).
      overwrite: replace an existing checkpoint at `path`. The new one is written completely under
        a temporary name first, so a failure leaves the old one in place.

    Returns:
      The absolute path written.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
      TypeError: a leaf that is not an array or scalar (named by its path).
      ImportError: orbax-checkpoint is not installed.

    Example:
      >>> save_checkpoint("out/hmc_state", result.state, metadata={"n_samples": 1000})
      >>> state = load_checkpoint("out/hmc_state", like=result.state)
    """
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    args = _composite_args(pytree, metadata)          # checks every leaf before writing anything
    checkpointer = _checkpointer()
    try:
        if not path.exists():
            checkpointer.save(path, args=args)
            return path
        staging, old = path.with_name(path.name + ".new"), path.with_name(path.name + ".old")
        _remove_tree(staging)
        checkpointer.save(staging, args=args)
        if jax.process_index() == 0:
            _remove_tree(old)
            os.replace(path, old)
            os.replace(staging, path)
            _remove_tree(old)
        _sync("ppl_save_checkpoint_overwrite")
        return path
    finally:
        checkpointer.close()


def _remove_tree(path: Path) -> None:
    if jax.process_index() == 0 and path.exists():
        shutil.rmtree(path)


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def _read_meta(checkpointer, path: Path) -> dict:
    ocp = _ocp()
    meta = checkpointer.restore(path, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a checkpoint written by inference.save_checkpoint or fit")
    if meta.get("version", 0) > _VERSION:
        raise ValueError(f"{path} was written by a newer version (format {meta['version']} > {_VERSION})")
    return meta


def _restore(checkpointer, path: Path, like: Any = None) -> tuple[Any, dict]:
    """`(pytree, metadata)` from the checkpoint directory `path` (see `load_checkpoint`)."""
    meta = _read_meta(checkpointer, path)
    if like is not None:
        stored = checkpointer.metadata(path).item_metadata["pytree"]
        _check_like(getattr(stored, "tree", stored), like, meta["zero_size"], str(path))
    restored = checkpointer.restore(path, args=_restore_args(like))["pytree"]
    return _decode(restored, meta["zero_size"], like), meta


def load_checkpoint(path: str | os.PathLike, like: Any = None) -> Any:
    """Restores a pytree saved by `save_checkpoint` (or the newest epoch of a `fit` checkpoint_dir).

    Args:
      path: a checkpoint directory, or a `fit` `checkpoint_dir` (then its newest epoch is read: a
        dict with "params", "opt_state", "state" and "key", the run's key as its uint32 key data).
      like: a pytree with the saved structure whose leaves give each array's shape, dtype and
        sharding (e.g. the freshly initialised parameters, or the state of a short run). Without it
        the structure comes back as nested dicts and lists (NamedTuples become dicts).

    Returns:
      The pytree: `like`'s structure with the saved values.

    Raises:
      FileNotFoundError: no checkpoint at `path`.
      ValueError: `like` has other leaves, shapes or dtypes than the checkpoint (the message names
        the leaf and both shapes), or `path` was not written by this library.
      ImportError: orbax-checkpoint is not installed.
    """
    path = _resolve(path)
    checkpointer = _checkpointer()
    try:
        return _restore(checkpointer, path, like)[0]
    finally:
        checkpointer.close()


def load_checkpoint_metadata(path: str | os.PathLike) -> dict:
    """The `metadata` dict given to `save_checkpoint` (for a `fit` checkpoint: epoch and history)."""
    path = _resolve(path)
    checkpointer = _checkpointer()
    try:
        return _read_meta(checkpointer, path)["user"]
    finally:
        checkpointer.close()


class TrainCheckpoints:
    """The numbered checkpoints of a training run: `directory/<epochs completed>/`, newest kept.

    Saves are asynchronous: `save` returns once the arrays are copied to host memory and orbax
    writes them in a background thread (the previous save is finished first). `close` waits for
    the last one, so a run that stops (or is interrupted) leaves its last checkpoint complete.

    Args:
      directory: where the epoch directories go (created).
      max_to_keep: how many of the newest checkpoints to keep (None: all).
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = 2):
        ocp = _ocp()
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=True,
                                               create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self.last_saved: int | None = None      # the epoch of this object's last save

    def latest_epoch(self) -> int | None:
        """The number of epochs of the newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def save(self, epoch: int, pytree: Any, metadata: Mapping[str, Any]) -> None:
        """Starts saving `pytree` and `metadata` as the checkpoint after `epoch` epochs."""
        self._manager.save(int(epoch), args=_composite_args(pytree, metadata), force=True)
        self.last_saved = int(epoch)

    def restore(self, epoch: int, like: Any) -> tuple[Any, dict]:
        """`(pytree, metadata)` of the checkpoint after `epoch` epochs, with `like`'s structure."""
        self._manager.wait_until_finished()
        path = self.directory / str(int(epoch))
        checkpointer = _checkpointer()
        try:
            pytree, meta = _restore(checkpointer, path, like)
        finally:
            checkpointer.close()
        return pytree, meta["user"]

    def close(self) -> None:
        """Waits for the last save to be complete, then releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
