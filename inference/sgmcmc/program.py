"""The SG-MCMC driver's compiled call: chains by `vmap`, steps and kept samples by `lax.scan`.

One call runs `records_per_call` blocks of `thinning` steps for every chain and keeps the
(constrained, `record_fn`-mapped) position and the sampler's Info at the end of each block. Each
chain reshuffles the data with its own key at the start of every epoch; its minibatch is gathered
from the data on the device. With a mesh (`inference.sharding`) the chains' states are pinned to
the "chains" axis and the minibatches `[n_chains, batch_size, ...]` to ("chains", "data"); XLA
reduces each chain's gradient over the "data" devices.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from inference.sharding import ChainMesh, constrain_batch, constrain_chains

__all__ = ["ProgramSpec", "build_call"]


class ProgramSpec(NamedTuple):
    """What determines one compiled call (with the shapes of its arguments).

    Attributes:
      sampler: the SG-MCMC sampler (its learning rate is replaced by the traced one when given).
      model: the model function; `kind` says which ("model_fn", "batch_log_joint", "log_joint").
      kind: see `model`.
      record_fn: `constrained position -> pytree`, kept for each sample.
      to_constrained: `(positions [n_chains, ...], data) -> constrained positions`.
      n_examples: N (0 without data).
      batch_size: examples per minibatch (0 without data).
      thinning: steps per kept sample.
      records_per_call: kept samples per call.
      has_records: whether the call keeps samples (False during warmup).
      placement: a `ChainMesh`, or None on one device.
    """

    sampler: Any
    model: Callable
    kind: str
    record_fn: Callable
    to_constrained: Callable
    n_examples: int
    batch_size: int
    thinning: int
    records_per_call: int
    has_records: bool
    placement: ChainMesh | None


def _with_learning_rate(sampler: Any, learning_rate: jax.Array | None) -> Any:
    if learning_rate is None:
        return sampler
    sampler = copy.copy(sampler)
    sampler.learning_rate = learning_rate
    return sampler


def _gradient_step(sampler: Any, model: Callable, kind: str) -> Callable:
    """`(key, state, batch) -> (state, info)` for the model's kind."""
    if kind == "model_fn":
        def step(key, state, batch):
            meta_bn, observed = model(batch)
            return sampler.step(key, state, meta_bn, observed)
    elif kind == "batch_log_joint":
        def step(key, state, batch):
            return sampler.update(key, state, jax.grad(lambda position: model(position, batch)))
    else:
        def step(key, state, batch):
            return sampler.update(key, state, jax.grad(model))
    return step


def _batch_rows(spec: ProgramSpec, perm: jax.Array, chain_key: jax.Array, t: jax.Array):
    """One chain at step t: `(data order, minibatch row indices [batch_size], step key)`."""
    key_perm, key_step = jax.random.split(jax.random.fold_in(chain_key, t))
    if not spec.n_examples:
        return perm, None, key_step
    n_batches = max(spec.n_examples // spec.batch_size, 1)
    b = t % n_batches
    shuffle = lambda: jax.random.permutation(key_perm, spec.n_examples).astype(perm.dtype)  # int32 under x64
    perm = lax.cond(b == 0, shuffle, lambda: perm)
    return perm, lax.dynamic_slice(perm, (b * spec.batch_size,), (spec.batch_size,)), key_step


def build_call(spec: ProgramSpec) -> Callable:
    """The jitted call: `(carry, chain_keys, data, learning_rate) -> (carry, (records, infos))`.

    `carry` is `(states [n_chains], permutations [n_chains, N], step [])`; `records` and `infos`
    have leading axes `[records_per_call, n_chains]` (None without records).
    """
    rows_of_all = jax.vmap(lambda perm, key, t: _batch_rows(spec, perm, key, t), in_axes=(0, 0, None))

    def call(carry, chain_keys, data, learning_rate):
        step_fn = _gradient_step(_with_learning_rate(spec.sampler, learning_rate), spec.model, spec.kind)

        def one_step(carry, _):
            states, perms, t = carry
            perms, rows, keys = rows_of_all(perms, chain_keys, t)
            batch = None if rows is None else constrain_batch(jax.tree.map(lambda a: a[rows], data),
                                                               spec.placement)
            states, info = jax.vmap(step_fn)(keys, states, batch)
            return (constrain_chains(states, spec.placement), perms, t + 1), info

        def block(carry, _):
            carry, infos = lax.scan(one_step, carry, None, length=spec.thinning)
            if not spec.has_records:
                return carry, None
            last_info = jax.tree.map(lambda x: x[-1], infos)
            last_info = last_info._replace(is_rejected=jnp.sum(infos.is_rejected, axis=0))   # per block
            values = spec.to_constrained(carry[0].position, data)
            return carry, (jax.vmap(spec.record_fn)(values), last_info)

        return lax.scan(block, carry, None, length=spec.records_per_call)

    return jax.jit(call)
