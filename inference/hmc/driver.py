"""The HMC family's run loop: warmup and sampling in one `lax.scan` over one kernel call, resumable.

`sample_chains` is the pure core every HMC-family sampler (`HMC`, `NUTS`, `ChEES`) runs inside its
jitted program. Iteration i of the scan:

1. during warmup, `warmup.prepare` (e.g. the step-size search at a window's start) under a
   `lax.cond` on the unbatched counter, then the parameters of the next transition;
2. the kernel, vmapped over chains, called once per iteration for warmup and sampling alike (so
   the log-joint's gradient is compiled into one trajectory loop, not two);
3. during warmup, `warmup.update`; at its last iteration the tuned parameters are frozen;
4. during sampling, the per-draw diagnostics are reduced over each `thinning` block and the kept
   draw is written into a preallocated buffer (warmup iterations write to a spare row).

Keys: chain c's key splits into a warmup and a sampling key; warmup iteration i uses
`fold_in(warmup key, i)` and sampling transition t (counted from the end of warmup, continued
across resumed runs) `fold_in(sampling key, t)`. Two runs of 500 draws, the second resumed from
the first's `MCMCState`, therefore give exactly the draws of one run of 1000.

Positions are flat `[n_chains, d]` vectors inside the loop (one `ravel_pytree` at the boundary),
so integrators never concatenate a dict of latents per leapfrog step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import jaxpr_as_fun
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from inference.hmc import prng
from inference.hmc.kernel import HMCState
from inference.mcmc_result import MCMCState
from inference.progress import progress_callback

__all__ = ["ChainWarmup", "Tuned", "LoopOutput", "sample_chains", "per_chain_warmup", "flatten_states",
           "unflatten_state", "trace_once", "REDUCTIONS"]

REDUCTIONS = ("mean", "any", "sum", "last")


class Tuned(NamedTuple):
    """The kernel's tuned parameters.

    Attributes:
      step_size: `[n_chains]` (per-chain adaptation) or `[]` (shared across chains).
      inverse_mass_matrix: `[n_chains, d]`, `[n_chains, d, d]`, or without the chain axis when shared.
      parameters: sampler-specific extras, e.g. `{"trajectory_length": []}` (ChEES).
    """

    step_size: Any                # a jax.Array; in a sampler's `tuned_axes`, a vmap axis (int or None)
    inverse_mass_matrix: Any
    parameters: dict


class ChainWarmup(NamedTuple):
    """A warmup over all chains at once (a vmapped per-chain `WindowAdaptation`, or a cross-chain one).

    Attributes:
      init: `(keys [C], states, tuned: Tuned) -> adaptation_state`.
      prepare: `(keys [C], adaptation_state, states, i) -> adaptation_state`, before iteration i.
      tuned: `adaptation_state -> Tuned` for the next transition.
      update: `(adaptation_state, i, states, infos) -> adaptation_state`, after iteration i.
      final: `adaptation_state -> Tuned` for sampling, after the last update.
    """

    init: Callable
    prepare: Callable
    tuned: Callable
    update: Callable
    final: Callable


def per_chain_warmup(window: Any) -> ChainWarmup:
    """A per-chain `inference.hmc.window.WindowAdaptation`, vmapped over chains."""

    def tuned(a):
        return Tuned(a.step_size, a.inverse_mass_matrix, {})

    return ChainWarmup(
        init=lambda keys, states, t: jax.vmap(window.init)(states, t.step_size, t.inverse_mass_matrix),
        prepare=window.prepare_chains or jax.vmap(window.prepare, in_axes=(0, 0, 0, None)),
        tuned=tuned,
        update=lambda a, i, states, infos: jax.vmap(window.update, in_axes=(0, None, 0, 0))(a, i, states,
                                                                                             infos),
        final=tuned)


class LoopOutput(NamedTuple):
    """What `sample_chains` returns.

    Attributes:
      positions: kept flat positions (or `transform_fn` of them), leaves `[n_chains, n_samples, ...]`.
      infos: `{name: [n_chains, n_samples]}`, the reduced per-draw diagnostics.
      states: the chains' last `HMCState` (flat positions `[n_chains, d]`).
      tuned: the parameters sampling used.
      warmup_acceptance_rate: `[n_chains, n_warmup]`.
    """

    positions: Any
    infos: dict
    states: HMCState
    tuned: Tuned
    warmup_acceptance_rate: jax.Array


def flatten_states(states: HMCState) -> tuple[HMCState, Callable]:
    """Chains' states with pytree positions -> flat `[n_chains, d]` positions, and `unravel` of one."""
    one = jax.tree_util.tree_map(lambda x: x[0], states.position)
    _, unravel = ravel_pytree(one)
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])
    return HMCState(flat(states.position), states.log_joint, flat(states.log_joint_grad)), unravel


def unflatten_state(states: HMCState, tuned: Tuned, unravel: Callable, iteration: ArrayLike) -> MCMCState:
    """The resumable `MCMCState` of flat chain states."""
    unflat = jax.vmap(unravel)
    return MCMCState(unflat(states.position), states.log_joint, unflat(states.log_joint_grad),
                     tuned.step_size, tuned.inverse_mass_matrix, jnp.asarray(iteration, jnp.int32),
                     dict(tuned.parameters))


def sample_chains(kernel: Callable, log_joint_fn: Callable, keys: jax.Array, states: HMCState, tuned: Tuned,
                  *, n_samples: int, n_warmup: int = 0, thinning: int = 1, warmup: ChainWarmup | None = None,
                  tuned_axes: Tuned, kernel_args: Callable, record_info: Callable, reductions: dict,
                  iteration: ArrayLike = 0, transform_fn: Callable | None = None,
                  progress_every: int = 0) -> LoopOutput:
    """Warmup then sampling for all chains, one `lax.scan` (call it inside `jax.jit`).

    Args:
      kernel: `kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix, **extra) -> (state, info)`,
        vmapped over the chains; or, where it has one (NUTS) and takes no extra arguments, its
        `kernel.batched` over all chains at once.
      log_joint_fn: `flat position [d] -> log p`, shape `[]`.
      keys: `[n_chains]` chain keys.
      states: `HMCState` of the chains, flat positions `[n_chains, d]`.
      tuned: the starting (or, when resuming, the final) parameters.
      n_samples, n_warmup, thinning: sizes (static ints).
      warmup: the warmup, or None when `n_warmup == 0`.
      tuned_axes: a `Tuned` of vmap axes (0 per chain, None shared) for the kernel's parameters.
      kernel_args: `(tuned, index) -> (extra kwargs, their vmap axes)`, `index` the iteration (warmup)
        or sampling transition.
      record_info: `(info, state) -> {name: [n_chains]}`, the diagnostics to keep.
      reductions: `{name: "mean" | "any" | "sum" | "last"}` over a thinning block.
      iteration: sampling transitions already done (resume), an int or int32 `[]`.
      transform_fn: `flat position [d] -> pytree` kept per draw (default: the flat position).
      progress_every: report progress every this many iterations (0: no progress bar).

    Returns:
      A `LoopOutput`.
    """
    n_chains = keys.shape[0]
    n_total = n_warmup + n_samples * thinning
    transform_fn = transform_fn or (lambda x: x)
    key_pairs = jax.vmap(prng.split)(keys)
    warmup_keys, sample_keys = key_pairs[:, 0], key_pairs[:, 1]
    iteration = jnp.asarray(iteration, jnp.int32)

    def call_kernel(keys_i, states, tuned, index):
        extra, extra_axes = kernel_args(tuned, index)
        batched = getattr(kernel, "batched", None)
        if batched is not None and not extra:   # the chains in lockstep (NUTS): no per-chain selects
            per_chain = lambda x, axis: x if axis == 0 else jnp.broadcast_to(x, (n_chains, *jnp.shape(x)))
            return batched(keys_i, states, log_joint_fn, per_chain(tuned.step_size, tuned_axes.step_size),
                           per_chain(tuned.inverse_mass_matrix, tuned_axes.inverse_mass_matrix))
        step = lambda k, s, eps, imm, ex: kernel(k, s, log_joint_fn, eps, imm, **ex)
        axes = (0, 0, tuned_axes.step_size, tuned_axes.inverse_mass_matrix, extra_axes)
        return jax.vmap(step, in_axes=axes)(keys_i, states, tuned.step_size, tuned.inverse_mass_matrix, extra)

    adaptation = warmup.init(warmup_keys, states, tuned) if n_warmup else ()  # type: ignore[union-attr]
    # the vmapped kernel is traced once, here; the loop body replays its jaxpr (tracing it again for
    # the diagnostics' shapes would double the largest part of the trace time)
    call_kernel, (_, info_shape) = trace_once(call_kernel, keys, states, tuned, iteration)
    one_info = jax.eval_shape(record_info, info_shape, states)
    kept = jax.eval_shape(jax.vmap(transform_fn), states.position)
    buffer = lambda s: jnp.zeros((n_samples + 1, *s.shape), s.dtype)   # a spare row for warmup writes
    buffers = jax.tree_util.tree_map(buffer, (kept, one_info))
    dtype = states.log_joint.dtype
    carry = (states, adaptation, tuned, buffers, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                                                         one_info),
             jnp.zeros((n_warmup + 1, n_chains), dtype))

    def body(carry, i):
        states, adaptation, tuned, buffers, block, warm_acc = carry
        is_warm = i < n_warmup
        t = i - n_warmup
        # one hash for both phases (each `fold_in` is a threefry loop in the program)
        keys_i = jax.vmap(prng.fold_in, in_axes=(0, None))(jnp.where(is_warm, warmup_keys, sample_keys),
                                                                 jnp.where(is_warm, i, iteration + t))
        key_pairs = jax.vmap(prng.split)(keys_i)
        if n_warmup:
            def prepare(a, tn):
                a = warmup.prepare(key_pairs[:, 0], a, states, i)
                return a, warmup.tuned(a)
            adaptation, tuned = lax.cond(is_warm, prepare, lambda a, tn: (a, tn), adaptation, tuned)
        index = jnp.where(is_warm, i, iteration + t).astype(jnp.int32)   # the traced kernel's int32
        states, info = call_kernel(key_pairs[:, 1], states, tuned, index)
        if n_warmup:
            def adapt(a, tn):
                a = warmup.update(a, i, states, info)
                return a, lax.cond(i == n_warmup - 1, warmup.final, warmup.tuned, a)
            adaptation, tuned = lax.cond(is_warm, adapt, lambda a, tn: (a, tn), adaptation, tuned)
            warm_acc = warm_acc.at[jnp.where(is_warm, i, n_warmup)].set(info.acceptance_rate.astype(dtype))
        record = record_info(info, states)
        block = _reduce_block(block, record, reductions, first=(t % thinning) == 0)
        is_kept = ~is_warm & ((t % thinning) == thinning - 1)
        row = jnp.where(is_kept, t // thinning, n_samples)
        position = lax.cond(is_kept, jax.vmap(transform_fn), lambda p: jax.tree_util.tree_map(
            lambda s: jnp.zeros(s.shape, s.dtype), kept), states.position)
        buffers = jax.tree_util.tree_map(lambda b, v: lax.dynamic_update_index_in_dim(b, v, row, 0), buffers,
                                         (position, block))
        if progress_every:
            progress_callback(i, progress_every, True)
        return (states, adaptation, tuned, buffers, block, warm_acc), None

    (states, _, tuned, buffers, _, warm_acc), _ = lax.scan(body, carry, jnp.arange(n_total))
    positions, infos = jax.tree_util.tree_map(lambda b: jnp.swapaxes(b[:n_samples], 0, 1), buffers)
    infos = {name: value / thinning if reductions.get(name) == "mean" else value
             for name, value in infos.items()}
    return LoopOutput(positions, infos, states, tuned, warm_acc[:n_warmup].T)


def trace_once(fn: Callable, *args: Any) -> tuple[Callable, Any]:
    """`fn` traced once at `args`: a function that replays the traced program, and its output shapes.

    Calling the replay (with arguments of `args`' shapes and dtypes) binds the recorded primitives
    without running `fn`'s Python again, so a kernel whose shapes are needed before a loop is not
    traced (and, under `vmap`, batched) a second time inside the loop body.

    Args:
      fn: a function of arrays (pytrees), possibly closing over tracers of the enclosing trace.
      *args: example arguments (pytrees of arrays).

    Returns:
      `(replay, out_shape)`: `replay(*args) == fn(*args)` (the same primitives), and `out_shape`,
      `fn`'s output as `jax.ShapeDtypeStruct` leaves.

    Raises:
      TypeError: (from `replay`) an argument whose shape or dtype differs from the traced one's.

    Example:
      >>> step, (_, info_shape) = trace_once(call_kernel, keys, states, tuned, index)
      >>> states, info = step(keys_i, states, tuned, index_i)   # inside the loop body
    """
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    out_tree = jax.tree_util.tree_structure(out_shape)
    replay_flat = jaxpr_as_fun(closed)

    in_avals = [jax.typeof(x) for x in jax.tree_util.tree_leaves(args)]

    def replay(*call_args):
        leaves = jax.tree_util.tree_leaves(call_args)
        for leaf, aval in zip(leaves, in_avals, strict=True):
            if (jnp.shape(leaf), jnp.result_type(leaf)) != (aval.shape, aval.dtype):
                raise TypeError(f"trace_once: an argument of shape {jnp.shape(leaf)} and dtype "
                                f"{jnp.result_type(leaf)} where {aval.shape} {aval.dtype} was traced")
        return jax.tree_util.tree_unflatten(out_tree, replay_flat(*leaves))

    return replay, out_shape


def _reduce_block(block: dict, record: dict, reductions: dict, first) -> dict:
    """Folds one transition's diagnostics into the running reduction of its thinning block."""
    out = {}
    for name, value in record.items():
        how = reductions.get(name, "last")
        previous = block[name]
        if how in ("mean", "sum"):   # a mean is the block's sum divided by `thinning` at the end
            out[name] = jnp.where(first, value, previous + value)
        elif how == "any":
            out[name] = jnp.where(first, value, previous | value)
        else:
            out[name] = value
    return out
