"""The pure core of `inference.fit`: one optimisation step that refuses non-finite updates, the
minibatch order of an epoch, and the jitted program that scans steps over one or more epochs.

A power user composes `make_step` and `batch_indices` with `lax.scan` directly; `fit` adds data
placement, progress, evaluation, checkpoints and the host loop on top.

References:
  The optax documentation, `optax.apply_if_finite
  <https://optax.readthedocs.io/en/latest/api/optimizer_wrappers.html>`_ (skipping non-finite
  updates inside the optimiser state; here the whole step, including the estimator state, is kept).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from inference.progress import report_running

__all__ = ["StepInfo", "TrainState", "batch_indices", "build_program", "make_step"]


class TrainState(NamedTuple):
    """What one step reads and writes.

    Attributes:
      params: the trained parameters, a pytree of float arrays.
      opt_state: the optimiser's state (`optimizer.init(params)`).
      state: the loss function's own state (e.g. a REINFORCE baseline), any pytree or None.
    """

    params: Any
    opt_state: Any
    state: Any


class StepInfo(NamedTuple):
    """What one step reports.

    Attributes:
      cost: the surrogate cost before the update, shape `[]` (a value to minimise).
      metrics: `{name: []}`, the loss function's metrics.
      is_skipped: shape `[]` bool, True when the cost or a gradient was not finite and nothing was
        applied (parameters, optimiser state and state kept as they were).
    """

    cost: jax.Array
    metrics: dict
    is_skipped: jax.Array


def _all_finite(cost: jax.Array, grads: Any) -> jax.Array:
    is_finite = jnp.isfinite(cost)
    for leaf in jax.tree_util.tree_leaves(grads):
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            is_finite = is_finite & jnp.all(jnp.isfinite(leaf))
    return is_finite


def _cast_like(tree: Any, like: Any) -> Any:
    """`tree` with each leaf cast to the dtype of `like`'s leaf (weak types made strong)."""
    return jax.tree.map(lambda x, y: lax.convert_element_type(x, jnp.result_type(y)), tree, like)


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation
              ) -> Callable[[TrainState, jax.Array, Any], tuple[TrainState, StepInfo]]:
    """One gradient step `step(train_state, key, batch) -> (train_state, StepInfo)`, pure and jittable.

    The gradient of the cost with respect to `params` goes through `optimizer`. When the cost or
    any gradient is not finite, nothing is applied: the returned `TrainState` is the input one and
    `StepInfo.is_skipped` is True.

    Args:
      loss_fn: `loss_fn(params, key, batch, state) -> (cost, (state, metrics))`, `cost` of shape
        `[]` (to minimise), `metrics` a dict of `[]` arrays or None.
      optimizer: an optax `GradientTransformation`.

    Returns:
      The step function.

    Example:
      >>> step = make_step(loss_fn, optax.adam(1e-3))
      >>> train_state = TrainState(params, optax.adam(1e-3).init(params), None)
      >>> train_state, info = jax.jit(step)(train_state, key, batch)
    """
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)

    def step(train_state: TrainState, key: jax.Array, batch: Any) -> tuple[TrainState, StepInfo]:
        params, _, state = train_state
        (cost, (new_state, metrics)), grads = value_and_grad(params, key, batch, state)
        is_finite = _all_finite(cost, grads)

        def apply(train_state):
            params, opt_state, state = train_state
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            return TrainState(_cast_like(new_params, params), _cast_like(new_opt_state, opt_state),
                              _cast_like(new_state, state))

        # A branch, not a select over the proposed and old states: the update then fuses as it would
        # without the check (measured on the VAE: +3% per step against +22% with `lax.select`).
        kept = lax.cond(is_finite, apply, lambda train_state: train_state, train_state)
        return kept, StepInfo(cost, dict(metrics or {}), jnp.logical_not(is_finite))

    return step


def batch_indices(key: jax.Array, n: int, batch_size: int, n_steps: int, shuffle: bool = True,
                  drop_remainder: bool = True) -> jax.Array:
    """The examples of each step of one epoch, `[n_steps, batch_size]` int32 row indices into `[n]`.

    The rows are a permutation of `range(n)` drawn with `key` (or `range(n)` itself when not
    `shuffle`), cut into `n_steps` batches. With `drop_remainder`, `n_steps = n // batch_size` and
    the `n mod batch_size` rows left at the end of the permutation are not used this epoch (they
    change from epoch to epoch). Otherwise `n_steps = ceil(n / batch_size)` and the last batch is
    completed with the first rows of the same permutation, so every example is used at least once
    and every batch has the same shape (one compiled step).
    """
    order = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
    size = n_steps * batch_size
    order = order[:size] if drop_remainder else jnp.concatenate([order, order[: size - n]])
    return order.astype(jnp.int32).reshape(n_steps, batch_size)


class ProgramSpec(NamedTuple):
    """The static configuration of a compiled training program (hashable: the cache key).

    `metric_dtypes` and `cost_dtype` come from checking `loss_fn` with `jax.eval_shape`;
    `n_examples` is None when the data come as stacked batches (one epoch per call).
    """

    loss_fn: Callable
    optimizer: optax.GradientTransformation
    n_examples: int | None
    batch_size: int
    n_steps: int
    epochs_per_call: int
    shuffle: bool
    drop_remainder: bool
    report_every: int        # 0: no progress callbacks
    batch_sharding: Any      # a NamedSharding for the batch, or None
    cost_dtype: Any
    metric_dtypes: tuple     # ((name, dtype), ...)


def _is_explicit(sharding) -> bool:
    """Whether `sharding`'s "data" mesh axis is Explicit (`jax.make_mesh`'s default), not Auto."""
    if sharding is None:
        return False
    axis_types = dict(zip(sharding.mesh.axis_names, sharding.mesh.axis_types, strict=True))
    return axis_types["data"] == jax.sharding.AxisType.Explicit


def _zero_infos(spec: ProgramSpec) -> StepInfo:
    metrics = {name: jnp.zeros(spec.n_steps, dtype) for name, dtype in spec.metric_dtypes}
    return StepInfo(jnp.zeros(spec.n_steps, spec.cost_dtype), metrics, jnp.zeros(spec.n_steps, bool))


def _running_sums(sums: tuple, info: StepInfo) -> tuple:
    """Adds an applied step's cost and metrics to `(count, {name: sum})` (skipped steps add nothing)."""
    count, totals = sums
    is_applied = jnp.logical_not(info.is_skipped)
    values = {"cost": info.cost, **info.metrics}
    totals = {name: totals[name] + jnp.where(is_applied, values[name], 0.0) for name in totals}
    return count + is_applied.astype(count.dtype), totals


def _step_rows(spec: ProgramSpec, key_order: jax.Array, data: Any) -> Any:
    """What the epoch's scan runs over besides the keys: stacked batches, or row indices."""
    if spec.n_examples is None:                  # data are this epoch's stacked batches
        return data
    if spec.n_examples == spec.batch_size:       # full batch: every step sees the data as they are
        return jnp.zeros(spec.n_steps, jnp.int32)
    return batch_indices(key_order, spec.n_examples, spec.batch_size, spec.n_steps, spec.shuffle,
                         spec.drop_remainder)


def _batch_of(spec: ProgramSpec, rows: Any, data: Any) -> Any:
    """The step's batch; with a mesh, split over its "data" axis."""
    if spec.n_examples is not None and spec.n_examples == spec.batch_size:
        return data
    if spec.n_examples is not None and _is_explicit(spec.batch_sharding):  # the gather names its sharding
        return jax.tree.map(lambda a: a.at[rows].get(out_sharding=spec.batch_sharding), data)
    batch = rows if spec.n_examples is None else jax.tree.map(lambda a: a[rows], data)
    if spec.batch_sharding is not None and not _is_explicit(spec.batch_sharding):
        batch = jax.tree.map(lambda a: lax.with_sharding_constraint(a, spec.batch_sharding), batch)
    return batch


def _make_epoch(spec: ProgramSpec):
    step = make_step(spec.loss_fn, spec.optimizer)
    names = ["cost", *(name for name, _ in spec.metric_dtypes)]
    float_dtype = jnp.result_type(float)

    def epoch(train_state, key_epoch, data, first_step, bar_id):
        key_order, key_steps = jax.random.split(key_epoch)
        xs = (jax.random.split(key_steps, spec.n_steps), _step_rows(spec, key_order, data))

        def body(carry, x):
            train_state, sums, i = carry
            key, rows = x
            train_state, info = step(train_state, key, _batch_of(spec, rows, data))
            if spec.report_every:
                sums = _running_sums(sums, info)
                report_running(bar_id, first_step + i, sums, spec.report_every)
            return (train_state, sums, i + 1), info

        sums = (jnp.zeros((), jnp.int32), {name: jnp.zeros((), float_dtype) for name in names})
        (train_state, _, _), infos = lax.scan(body, (train_state, sums, jnp.zeros((), jnp.int32)), xs)
        return train_state, infos

    return epoch


@functools.lru_cache(maxsize=64)
def build_program(spec: ProgramSpec):
    """The jitted program `call(train_state, key_epochs, first_epoch, n_active, data, bar_id)`.

    It runs epochs `first_epoch, ..., first_epoch + n_active - 1` (at most `spec.epochs_per_call`;
    `first_epoch` and `n_active` are traced, so any count compiles once) and returns
    `(train_state, infos)`, `infos` a `StepInfo` with leaves `[epochs_per_call, n_steps]` (rows past
    `n_active` are zeros). Epoch e draws with `fold_in(key_epochs, e)`, so results do not depend on
    how epochs are grouped into calls. Cached on `spec`: the same loss function, optimiser and
    configuration reuse one compiled program across `fit` calls.
    """
    epoch = _make_epoch(spec)
    n_steps, epochs_per_call = spec.n_steps, spec.epochs_per_call

    def call(train_state, key_epochs, first_epoch, n_active, data, bar_id):
        if epochs_per_call == 1:
            key_epoch = jax.random.fold_in(key_epochs, first_epoch)
            train_state, infos = epoch(train_state, key_epoch, data, first_epoch * n_steps, bar_id)
            return train_state, jax.tree.map(lambda x: x[None], infos)

        def body(train_state, g):
            e = first_epoch + g

            def run(train_state):
                return epoch(train_state, jax.random.fold_in(key_epochs, e), data, e * n_steps, bar_id)

            return lax.cond(g < n_active, run, lambda ts: (ts, _zero_infos(spec)), train_state)

        return lax.scan(body, train_state, jnp.arange(epochs_per_call))

    return jax.jit(call)
