"""`fit`: one training driver for every objective, with checkpoints, resume and data parallelism.

`fit(key, loss_fn, params, optimizer, data, n_epochs=..., batch_size=...)` minimises any surrogate
cost `loss_fn(params, key, batch, state) -> (cost, (state, metrics))` (SGVB, REINFORCE with its
baseline state, VIMCO, RWS, ...) with an optax optimiser. Each epoch is one jitted `lax.scan` over
minibatches (several short epochs share one call), compiled once per configuration and reused by
later `fit` calls with the same loss function, optimiser and shapes. Steps whose cost or gradient
is not finite are skipped and counted. Progress is reported from inside the scan every few steps,
without a host synchronisation per step.

Randomness: `key` is split into an epoch key, an evaluation key and the returned key; epoch e
shuffles and draws with `fold_in(epoch key, e)`, so the same key gives the same run, and a run
resumed from a checkpoint gives the same parameters as an uninterrupted one (bit for bit on CPU).

References:
  Kingma and Ba, `Adam: A Method for Stochastic Optimization <https://arxiv.org/abs/1412.6980>`_,
  2015; the NumPyro `SVI.run` API (`numpyro.infer.svi`), the interface this generalises.
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np
import optax

from inference import train_data
from inference.progress import ProgressBar, register_bar, unregister_bar
from inference.train_checks import check_int, check_loss_fn, check_params, strong
from inference.train_step import ProgramSpec, TrainState, build_program

__all__ = ["TrainResult", "fit"]

_STEPS_PER_CALL = 256   # short epochs are grouped so that one compiled call runs at least this many steps


class TrainResult(NamedTuple):
    """What `fit` returns.

    Attributes:
      params: the trained parameters (same structure as the `params` given).
      opt_state: the optimiser state after the last step (pass it back as `opt_state=` to go on).
      state: the loss function's state after the last step.
      history: `{name: [n_epochs_run]}` numpy arrays, one entry per epoch run (all epochs of the
        run, including those before a resume): "cost" (mean surrogate cost over the epoch's applied
        steps), each metric of `loss_fn` (same mean), "n_skipped" (steps skipped because the cost
        or a gradient was not finite), each value returned by `eval_fn` (NaN in epochs without an
        evaluation) and "seconds" (wall time per epoch; a compiling epoch includes the compile).
      key: a key not used by the run, for what comes next.
    """

    params: Any
    opt_state: Any
    state: Any
    history: dict
    key: jax.Array


def _epochs_per_call(n_steps: int, periods: list[int]) -> int:
    return max(1, min([math.ceil(_STEPS_PER_CALL / n_steps), *periods]))


def _next_boundary(epoch: int, n_epochs: int, periods: list[int]) -> int:
    """The first epoch count after `epoch` at which the host must act (evaluate, call back, save)."""
    return min([n_epochs, *((epoch // p + 1) * p for p in periods)])


class _Restored(NamedTuple):
    train_state: TrainState
    key: jax.Array
    epoch: int
    records: list
    is_stopped: bool


def _resume_path(checkpoint_dir, resume):
    from inference import checkpoint
    if resume is False or resume is None:
        return None
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True continues from checkpoint_dir, but no checkpoint_dir was given")
        return checkpoint.latest_checkpoint(checkpoint_dir)   # None: nothing saved yet, start afresh
    return checkpoint._resolve(resume)                           # raises FileNotFoundError


def _open_checkpoints(checkpoint_dir, resume_path, max_to_keep):
    from inference import checkpoint
    if checkpoint_dir is None:
        return None
    directory = os.path.abspath(checkpoint_dir)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(f"checkpoint_dir {directory} exists and is not a directory")
    os.makedirs(directory, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"checkpoint_dir {directory} is not writable")
    latest = checkpoint.latest_checkpoint(directory)
    if latest is not None and (resume_path is None or os.path.dirname(str(resume_path)) != directory):
        raise FileExistsError(f"checkpoint_dir {directory} already holds checkpoints (epoch {latest.name}); "
                              "pass resume=True to continue that run, or give an empty directory")
    return checkpoint.TrainCheckpoints(directory, max_to_keep=max_to_keep)


def _restore(path, like: dict) -> _Restored:
    from inference import checkpoint
    checkpointer = checkpoint._checkpointer()
    try:
        tree, meta = checkpoint._restore(checkpointer, path, like)
    finally:
        checkpointer.close()
    user = meta["user"]
    if not np.array_equal(tree["key"], like["key"]):
        warnings.warn(f"fit: resuming from {path} with the key it was started with, not the key passed now",
                      stacklevel=3)
    train_state = TrainState(tree["params"], tree["opt_state"], tree["state"])
    return _Restored(train_state, tree["key"], int(user["epoch"]), list(user["history"]),
                     bool(user["is_stopped"]))


def _key_data(key) -> np.ndarray:
    """The key's data on the host (stored so in checkpoints: every process holds the same key)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key)


def _key_like(data: np.ndarray | jax.Array, key: jax.Array) -> jax.Array:
    """Key data back as a key of `key`'s kind (typed, with its implementation, or raw uint32)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jax.numpy.asarray(data), impl=jax.random.key_impl(key))
    return jax.numpy.asarray(data)


@functools.lru_cache(maxsize=16)
def _jitted(fn: Callable) -> Callable:
    return jax.jit(fn)


def _evaluate(eval_fn, params, key, state, taken: set) -> dict:
    values = _jitted(eval_fn)(params, key, state)
    if not isinstance(values, Mapping):
        raise TypeError("eval_fn(params, key, state) must return a dict of scalars, got "
                        f"{type(values).__name__}")
    record = {}
    for name, value in train_data.to_host(dict(values)).items():
        if np.shape(value) != ():
            raise TypeError(f"eval_fn's value {name!r} has shape {np.shape(value)}; each must be a scalar")
        if name in taken:
            raise ValueError(f"eval_fn returns {name!r}, a name the training history already uses")
        record[name] = float(value)
    return record


def _epoch_records(infos, n_active: int, names: list[str], seconds: float) -> list[dict]:
    """One history entry per active epoch: means over applied steps (NaN if none), skipped steps."""
    is_applied = ~infos.is_skipped[:n_active]                       # [n_active, n_steps]
    count = is_applied.sum(axis=1)
    values = {"cost": infos.cost, **{name: infos.metrics[name] for name in names}}
    columns = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, value in values.items():
            total = np.where(is_applied, value[:n_active], 0).sum(axis=1, dtype=np.float64)
            columns[name] = np.where(count > 0, total / count, np.nan).tolist()
    columns["n_skipped"] = (is_applied.shape[1] - count).tolist()
    return [{**{name: column[g] for name, column in columns.items()}, "seconds": seconds}
            for g in range(n_active)]


def _history(records: list[dict]) -> dict[str, np.ndarray]:
    names = list(dict.fromkeys(name for record in records for name in record))
    return {name: np.asarray([r.get(name, np.nan) for r in records],
                             dtype=np.int64 if name == "n_skipped" else np.float64) for name in names}


class _Loop(NamedTuple):
    """Everything the epoch loop needs besides the carried state."""

    program: Callable
    source: train_data.DataSource
    spec: ProgramSpec
    periods: list
    n_epochs: int
    key_epochs: jax.Array
    key_eval: jax.Array
    eval_fn: Callable | None
    eval_every: int
    callback_fn: Callable | None
    checkpoints: Any
    checkpoint_every: int
    key: jax.Array


def _run_epochs(loop: _Loop, train_state: TrainState, epoch: int, records: list, bar: ProgressBar):
    """The host loop: compiled calls of one or more epochs, then evaluation, callback and saving."""
    bar_id, names, is_stopped = register_bar(bar), [n for n, _ in loop.spec.metric_dtypes], False
    try:
        while epoch < loop.n_epochs and not is_stopped:
            n_active = _next_boundary(epoch, loop.n_epochs, loop.periods) - epoch
            n_active = min(n_active, loop.spec.epochs_per_call)
            data = loop.source.epoch_data(epoch)
            if data is None:                    # an iterator ran out: keep what was trained
                if loop.checkpoints is not None and epoch and loop.checkpoints.last_saved != epoch:
                    _save(loop, train_state, epoch, records, is_stopped=False)
                break
            start = time.perf_counter()
            train_state, infos = loop.program(train_state, loop.key_epochs, epoch, n_active, data, bar_id)
            infos = train_data.to_host(infos)
            seconds = (time.perf_counter() - start) / n_active
            records.extend(_epoch_records(infos, n_active, names, seconds))
            epoch += n_active
            is_stopped = _end_of_call(loop, train_state, epoch, records, bar)
    finally:
        unregister_bar(bar_id)
    return train_state, epoch, is_stopped


def _end_of_call(loop: _Loop, train_state: TrainState, epoch: int, records: list, bar: ProgressBar) -> bool:
    record = records[-1]
    if loop.eval_fn is not None and epoch % loop.eval_every == 0:
        key = jax.random.fold_in(loop.key_eval, epoch)
        record.update(_evaluate(loop.eval_fn, train_state.params, key, train_state.state, set(record)))
    bar.set(epoch * loop.source.n_steps)
    bar.set_postfix({k: v for k, v in record.items() if k not in ("n_skipped", "seconds")})
    is_stopped = False
    if loop.callback_fn is not None:
        is_stopped = bool(loop.callback_fn(epoch, train_state.params, train_state.state, dict(record)))
    if loop.checkpoints is not None and (epoch % loop.checkpoint_every == 0 or epoch == loop.n_epochs
                                         or is_stopped):
        _save(loop, train_state, epoch, records, is_stopped)
    return is_stopped


def _save(loop: _Loop, train_state: TrainState, epoch: int, records: list, is_stopped: bool) -> None:
    tree = {"params": train_state.params, "opt_state": train_state.opt_state, "state": train_state.state,
            "key": _key_data(loop.key)}
    # a snapshot of the history: the save finishes in the background while later epochs append to
    # `records`, and the live list let epochs after `epoch` into this checkpoint (seen under load)
    history = [dict(record) for record in records]
    loop.checkpoints.save(epoch, tree, {"epoch": epoch, "is_stopped": is_stopped, "history": history})


def _warn_skipped(records: list, first: int) -> None:
    skipped = [(first + i + 1, r["n_skipped"]) for i, r in enumerate(records[first:]) if r["n_skipped"]]
    if skipped:
        total = sum(n for _, n in skipped)
        warnings.warn(f"fit: {total} steps had a non-finite cost or gradient and were skipped (not applied), "
                      f"in epochs {[e for e, _ in skipped][:10]}; history['n_skipped'] counts them per epoch",
                      RuntimeWarning, stacklevel=3)


def fit(key: jax.Array, loss_fn: Callable, params: Any, optimizer: optax.GradientTransformation, data: Any, *,
        n_epochs: int, batch_size: int | None = None, state: Any = None, opt_state: Any = None,
        shuffle: bool = True, drop_remainder: bool = True, steps_per_epoch: int | None = None,
        eval_fn: Callable | None = None, eval_every: int = 1, callback_fn: Callable | None = None,
        checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 1,
        max_to_keep: int | None = 2,
        resume: bool | str | os.PathLike = False, mesh: jax.sharding.Mesh | None = None,
        progress_bar: bool = True) -> TrainResult:
    """Minimises `loss_fn` over epochs of minibatches with an optax optimiser.

    Args:
      key: a JAX PRNG key; the same key gives the same run.
      loss_fn: `loss_fn(params, key, batch, state) -> (cost, (state, metrics))`: a float scalar
        surrogate cost to minimise (e.g. `jnp.mean(inference.elbo(...).sgvb())`), the loss's new
        state (same structure, shapes and dtypes as the one given; e.g. a REINFORCE baseline) and a
        dict of float scalars to record (or None). `key` is a fresh key per step.
      params: the parameters, a pytree of float arrays.
      optimizer: an optax `GradientTransformation` (pass the same object to later `fit` calls to
        reuse the compiled program).
      data: a pytree of arrays with a shared leading data axis `[N, ...]` (batched on the device:
        each batch is the same pytree with leading axis `[batch_size]`); or a callable
        `data(epoch) -> iterable of batches`; or an iterator of batches (with `steps_per_epoch`).
        User-made batches must all have the same shapes.
      n_epochs: the number of epochs the run should reach (counting those of a resumed run), >= 1.
      batch_size: examples per step, in [1, N] (arrays only; other data give their own batches).
      state: the initial state of `loss_fn` (any pytree, or None).
      opt_state: the optimiser state to start from (default `optimizer.init(params)`).
      shuffle: draw a new permutation of the examples every epoch (arrays only; with
        `batch_size == N` every step takes the whole data in its order).
      drop_remainder: with arrays, an epoch has `N // batch_size` steps and the `N mod batch_size`
        examples left at the end of the epoch's permutation wait for a later epoch; with False it
        has `ceil(N / batch_size)` steps and the last batch is completed with the first examples of
        the permutation, so every example is used in every epoch.
      steps_per_epoch: batches per epoch taken from an iterator (or at most from `data(epoch)`).
      eval_fn: `eval_fn(params, key, state) -> {name: scalar}`, jitted and run after every
        `eval_every` epochs; its values join `history`.
      eval_every: epochs between evaluations.
      callback_fn: `callback_fn(epoch, params, state, record) -> bool | None` on the host after each
        epoch (`epoch` counts completed epochs; `record` is that epoch's history entry); returning
        True stops training (early stopping).
      checkpoint_dir: where to save checkpoints (`<dir>/<epoch>/`, see `inference.checkpoint`); it
        must hold no checkpoints unless the run resumes from it.
      checkpoint_every: epochs between checkpoints (the last epoch is always saved).
      max_to_keep: how many of the newest checkpoints to keep (None: all).
      resume: False; True to continue from the newest checkpoint in `checkpoint_dir` (starting
        afresh when there is none, so one command line serves the first run and every restart);
        or a path to a checkpoint or checkpoint directory, which must exist. The checkpoint's
        parameters, optimiser state, state, key and history replace the arguments, which then only
        give structures, shapes and dtypes.
      mesh: a `jax.sharding.Mesh` with a "data" axis: each batch is split over it, parameters are
        replicated, and XLA reduces the gradients. Works across processes under
        `jax.distributed.initialize` (see `inference.shard_data`).
      progress_bar: show a tqdm bar with the running cost and metrics (process 0 only).

    Returns:
      A `TrainResult(params, opt_state, state, history, key)`.

    Raises:
      ValueError, TypeError: bad sizes, data of mismatched leading axes, non-float parameters, or a
        `loss_fn` whose outputs do not have the documented structure (all before any compilation).
      FileExistsError: `checkpoint_dir` holds checkpoints of another run and `resume` is not set.
      FileNotFoundError: `resume` names a path without a checkpoint.

    Warns:
      RuntimeWarning: steps were skipped because the cost or a gradient was not finite.

    Example:
      >>> def loss_fn(params, key, x, state):
      ...     q = build_q_net(params, x).observe(key)
      ...     cost = jnp.mean(inference.elbo(build_gen(params, len(x)), {"x": x}, variational=q).sgvb())
      ...     return cost, (state, {"elbo": -cost})
      >>> result = inference.fit(key, loss_fn, params, optax.adam(1e-3), x_train, n_epochs=10,
      ...                        batch_size=128, checkpoint_dir="out/ckpt", resume=True)
      >>> result.history["elbo"]          # [10], the mean training ELBO of each epoch
    """
    n_epochs = check_int("n_epochs", n_epochs, 1)
    eval_every, checkpoint_every = check_int("eval_every", eval_every, 1), \
        check_int("checkpoint_every", checkpoint_every, 1)
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    check_params(params)
    params, state = strong(params), strong(state)
    opt_state = strong(optimizer.init(params) if opt_state is None else opt_state)
    resume_path = _resume_path(checkpoint_dir, resume)
    checkpoints = _open_checkpoints(checkpoint_dir, resume_path, max_to_keep)
    try:
        return _fit(key, loss_fn, TrainState(params, opt_state, state), optimizer, data, n_epochs, batch_size,
                    shuffle, drop_remainder, steps_per_epoch, eval_fn, eval_every, callback_fn, checkpoints,
                    checkpoint_every, resume_path, mesh, progress_bar)
    finally:
        if checkpoints is not None:
            checkpoints.close()


def _fit(key, loss_fn, train_state, optimizer, data, n_epochs, batch_size, shuffle, drop_remainder,
         steps_per_epoch, eval_fn, eval_every, callback_fn, checkpoints, checkpoint_every, resume_path, mesh,
         progress_bar) -> TrainResult:
    epoch, records = 0, []
    replicated = batch_sharding = None
    if mesh is not None:
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    train_state = train_data.put(train_state, replicated)     # restored onto the same placement
    if resume_path is not None:
        restored = _restore(resume_path, {"params": train_state.params, "opt_state": train_state.opt_state,
                                          "state": train_state.state, "key": _key_data(key)})
        train_state, epoch, records = restored.train_state, restored.epoch, restored.records
        key = _key_like(restored.key, key)
        if restored.is_stopped or epoch >= n_epochs:
            return TrainResult(train_state.params, train_state.opt_state, train_state.state,
                               _history(records), jax.random.split(key, 3)[2])
    source = train_data.prepare_data(data, batch_size, drop_remainder=drop_remainder,
                                     steps_per_epoch=steps_per_epoch, mesh=mesh, first_epoch=epoch)
    key_epochs, key_eval, key_out = jax.random.split(key, 3)
    cost_dtype, metric_dtypes = check_loss_fn(loss_fn, train_state.params, key_epochs, source.batch_spec,
                                               train_state.state)
    key_epochs = train_data.put(key_epochs, replicated)
    periods = ([checkpoint_every] if checkpoints is not None else []) + \
        ([eval_every] if eval_fn is not None else []) + ([1] if callback_fn is not None else [])
    epochs_per_call = 1 if source.n_examples is None else _epochs_per_call(source.n_steps, periods)
    is_shown = bool(progress_bar) and jax.process_index() == 0
    report_every = max(1, source.n_steps * epochs_per_call // 4) if is_shown else 0   # a callback: ~1 ms
    spec = ProgramSpec(loss_fn, optimizer, source.n_examples, source.batch_size, source.n_steps,
                       epochs_per_call, bool(shuffle), bool(drop_remainder), report_every, batch_sharding,
                       cost_dtype, metric_dtypes)
    loop = _Loop(build_program(spec), source, spec, periods, n_epochs, key_epochs, key_eval, eval_fn,
                 eval_every, callback_fn, checkpoints, checkpoint_every, key)
    bar = ProgressBar(n_epochs * source.n_steps, "fit", is_shown, initial=epoch * source.n_steps, unit="step")
    first = len(records)
    try:
        train_state, epoch, _ = _run_epochs(loop, train_state, epoch, records, bar)
    finally:
        bar.close()
    _warn_skipped(records, first)
    return TrainResult(train_state.params, train_state.opt_state, train_state.state,
                       _history(records), key_out)
