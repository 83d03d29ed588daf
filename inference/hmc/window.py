"""Warmup as its own function: `window_adaptation` tunes the step size and mass matrix of any HMC-family
kernel (BlackJAX's `window_adaptation` shape), built from the `(init, update, final)` triples of
`inference.hmc.adaptation`.

The schedule is data: boolean arrays over the warmup iterations (`window_schedule`) indexed with
the iteration counter inside `lax.cond`, so one compiled program serves every iteration and the
chains can be vmapped. Per iteration i:

1. `prepare(key, adaptation_state, state, i)`: at i = 0 and right after each slow window, the step
   size search of Hoffman and Gelman (2014, Alg. 4) restarts dual averaging (as Stan does).
2. the kernel moves the chain with `adaptation_state.step_size` and `.inverse_mass_matrix`.
3. `update(adaptation_state, i, state, info)`: dual averaging on `info.acceptance_rate`; the mass
   estimator collects `state.position`; at a window's end the inverse mass matrix is re-estimated;
   at the last iteration the step size becomes dual averaging's averaged iterate.

`run` does all of it in one `lax.scan` and returns the last state and the tuned parameters;
`HMC`, `NUTS` (and the drivers) compose `prepare`/`update` with the same kernel call they sample
with, so the kernel is compiled once for warmup and sampling.

Mass schedules: "windowed" (Stan: a fast initial buffer, slow windows that double in length, a
fast final buffer; Welford (co)variance regularised toward the identity), "exponential" (ZhuSuan:
exponentially weighted variance from iteration `mass_collect_iters`, diagonal only), or None.

References:
  Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, JMLR 2014;
  Stan Reference Manual, `HMC algorithm parameters
  <https://mc-stan.org/docs/reference-manual/mcmc.html#hmc-algorithm-parameters>`_;
  Cabezas et al., `BlackJAX: Composable Bayesian inference in JAX <https://arxiv.org/abs/2402.10797>`_,
  2024 (the `window_adaptation` interface).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from inference.hmc import adaptation as adapt
from inference.hmc import prng
from inference.hmc.kernel import HMCState
from inference.hmc.kernel import init as hmc_init

__all__ = ["WindowAdaptation", "WindowAdaptationState", "window_adaptation", "clip_step_size"]

_MASS_SCHEDULES = ("windowed", "exponential", None)


class WindowAdaptationState(NamedTuple):
    """Warmup state of one chain.

    Attributes:
      step_size: the step size of the next transition, shape `[]` (position dtype).
      inverse_mass_matrix: `[d]` or `[d, d]` over the raveled position.
      dual: dual averaging's state.
      mass: the mass estimator's state (`WelfordState`, `EMAState`, or `()` when not adapted).
    """

    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    dual: adapt.DualAveragingState
    mass: Any


class WindowAdaptation(NamedTuple):
    """The pieces of a warmup (see the module docstring); all functions are for one chain.

    Attributes:
      init: `(state: HMCState, step_size, inverse_mass_matrix=None) -> WindowAdaptationState`.
      prepare: `(key, adaptation_state, state, i) -> adaptation_state`.
      update: `(adaptation_state, i, state, info) -> adaptation_state`.
      final: `adaptation_state -> {"step_size": [], "inverse_mass_matrix": [d] or [d, d]}`.
      run: `(key, position, step_size=1.0, inverse_mass_matrix=None) -> ((HMCState, parameters),
        infos)`; `infos` are the kernel's, stacked over the `n_warmup` iterations.
      n_warmup: the number of warmup iterations the schedule was built for.
      prepare_chains: `(keys [C], adaptation_states [C], states [C], i) -> adaptation_states`, the
        result of `jax.vmap(prepare, in_axes=(0, 0, 0, None))` with the step-size searches of the
        chains in lockstep (`adaptation.find_reasonable_step_sizes`), which traces faster.
    """

    init: Callable
    prepare: Callable
    update: Callable
    final: Callable
    run: Callable
    n_warmup: int
    prepare_chains: Callable | None = None


def clip_step_size(step_size: ArrayLike) -> jax.Array:
    """Keeps a step size in [1e-10, 1e10]: the exp of a very negative log step size flushes to 0,
    and a zero step never recovers."""
    return jnp.clip(step_size, 1e-10, 1e10)


def window_adaptation(kernel: Callable, log_joint_fn: Callable, n_warmup: int, *,
                      adapt_step_size: bool = True, mass_schedule: str | None = "windowed",
                      dense_mass: bool = False,
                      target_acceptance_rate: float = 0.8, gamma: float = 0.05, t0: float = 100.0,
                      kappa: float = 0.75, mass_collect_iters: int = 10, mass_decay: float = 0.99,
                      initial_buffer: int = 75, final_buffer: int = 50, base_window: int = 25,
                      **kernel_parameters: Any) -> WindowAdaptation:
    """Step-size and mass-matrix warmup for `kernel`, with the schedule as data.

    Args:
      kernel: `kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix, **kernel_parameters)
        -> (HMCState, info)` with `info.acceptance_rate` (HMC's, NUTS', ...).
      log_joint_fn: `position -> log p`, shape `[]`.
      n_warmup: warmup iterations (>= 0).
      adapt_step_size: dual averaging toward `target_acceptance_rate`, restarted by the step-size
        search at the start and after each slow window.
      mass_schedule: "windowed" (Stan), "exponential" (ZhuSuan, diagonal) or None (identity mass).
      dense_mass: a dense inverse mass matrix (windowed schedule only).
      target_acceptance_rate, gamma, t0, kappa: dual averaging (Hoffman and Gelman 2014, sec. 3.2).
      mass_collect_iters, mass_decay: the exponential schedule's start and decay.
      initial_buffer, final_buffer, base_window: Stan's windows (see `adaptation.window_schedule`).
      **kernel_parameters: static extra arguments of `kernel` (e.g. `n_leapfrogs=10`).

    Returns:
      A `WindowAdaptation`.

    Raises:
      ValueError: an unknown `mass_schedule`, dense exponential mass, a negative `n_warmup`, or a
        target acceptance rate outside (0, 1).

    Example:
      >>> warmup = window_adaptation(inference.hmc.nuts.build_kernel(), log_joint, 500)
      >>> (state, parameters), infos = jax.jit(warmup.run)(key, position)
      >>> state, info = kernel(key2, state, log_joint, **parameters)

    References:
      See the module docstring.
    """
    if mass_schedule not in _MASS_SCHEDULES:
        raise ValueError(f"mass_schedule must be one of {_MASS_SCHEDULES}, got {mass_schedule!r}")
    if mass_schedule == "exponential" and dense_mass:
        raise ValueError("the exponential mass schedule is diagonal only; use mass_schedule='windowed' "
                         "with dense_mass=True")
    if not isinstance(n_warmup, (int, np.integer)) or n_warmup < 0:
        raise ValueError(f"n_warmup must be an int >= 0, got {n_warmup!r}")
    if not 0.0 < target_acceptance_rate < 1.0:
        raise ValueError(f"target_acceptance_rate must be in (0, 1), got {target_acceptance_rate!r}")
    n_warmup = int(n_warmup)
    schedule = _schedule(n_warmup, adapt_step_size, mass_schedule, initial_buffer, final_buffer, base_window)
    def dual_update(dual, rate):
        return adapt.dual_averaging_update(dual, rate, target_acceptance_rate, gamma, t0, kappa)

    def init(state: HMCState, step_size, inverse_mass_matrix=None) -> WindowAdaptationState:
        flat, _ = ravel_pytree(state.position)
        dim, dtype = flat.shape[0], flat.dtype
        if inverse_mass_matrix is None:
            inverse_mass_matrix = jnp.eye(dim, dtype=dtype) if dense_mass else jnp.ones(dim, dtype)
        step_size = jnp.asarray(step_size, dtype)
        mass: Any
        if mass_schedule == "exponential":
            mass = adapt.ema_init(dim, dtype)
        elif mass_schedule == "windowed":
            mass = adapt.welford_init(dim, dense_mass, dtype)
        else:
            mass = ()
        return WindowAdaptationState(step_size, jnp.asarray(inverse_mass_matrix, dtype),
                                     adapt.dual_averaging_init(step_size, dtype), mass)

    def searching(find_step_size, dual_init):
        """`prepare` (one chain) or `prepare_chains` (C chains), by the step-size search they use."""

        def prepare_fn(key, adaptation_state: WindowAdaptationState, state: HMCState, i):
            if not adapt_step_size or n_warmup == 0:
                return adaptation_state

            def search(a):
                step_size = clip_step_size(find_step_size(key, state, log_joint_fn, a.step_size,
                                                          a.inverse_mass_matrix))
                return a._replace(step_size=step_size, dual=dual_init(step_size))

            return lax.cond(jnp.asarray(schedule.is_search)[i], search, lambda a: a, adaptation_state)

        return prepare_fn

    dual_init = lambda step_size: adapt.dual_averaging_init(step_size, step_size.dtype)
    prepare = searching(adapt.find_reasonable_step_size, dual_init)
    prepare_chains = searching(adapt.find_reasonable_step_sizes, jax.vmap(dual_init))

    def update(adaptation_state: WindowAdaptationState, i, state: HMCState, info) -> WindowAdaptationState:
        a = adaptation_state
        if n_warmup == 0:
            return a
        if adapt_step_size:
            dual = dual_update(a.dual, info.acceptance_rate)
            a = a._replace(dual=dual, step_size=clip_step_size(jnp.exp(dual.log_step_size)))
        if mass_schedule == "exponential":
            flat, _ = ravel_pytree(state.position)
            mass = adapt.ema_update(a.mass, flat, mass_decay)
            inverse_mass = jnp.where(i >= mass_collect_iters, adapt.ema_final(mass), a.inverse_mass_matrix)
            a = a._replace(mass=mass, inverse_mass_matrix=inverse_mass.astype(flat.dtype))
        elif mass_schedule == "windowed":
            flat, _ = ravel_pytree(state.position)
            mass = lax.cond(jnp.asarray(schedule.is_collecting)[i], lambda m: adapt.welford_update(m, flat),
                            lambda m: m, a.mass)
            a = a._replace(mass=mass)
            a = lax.cond(jnp.asarray(schedule.is_window_end)[i], _end_window, lambda a: a, a)
        if adapt_step_size:
            final_step = clip_step_size(adapt.dual_averaging_final(a.dual)).astype(a.step_size.dtype)
            a = a._replace(step_size=jnp.where(i == n_warmup - 1, final_step, a.step_size))
        return a

    def final(adaptation_state: WindowAdaptationState) -> dict:
        return {"step_size": adaptation_state.step_size,
                "inverse_mass_matrix": adaptation_state.inverse_mass_matrix}

    def run(key, position, step_size=1.0, inverse_mass_matrix=None):
        state = hmc_init(position, log_joint_fn)
        adaptation_state = init(state, step_size, inverse_mass_matrix)

        def body(carry, i):
            state, a = carry
            key_prepare, key_kernel = prng.split(prng.fold_in(key, i))
            a = prepare(key_prepare, a, state, i)
            state, info = kernel(key_kernel, state, log_joint_fn, a.step_size, a.inverse_mass_matrix,
                                 **kernel_parameters)
            return (state, update(a, i, state, info)), info

        (state, adaptation_state), infos = lax.scan(body, (state, adaptation_state), jnp.arange(n_warmup))
        return (state, final(adaptation_state)), infos

    return WindowAdaptation(init, prepare, update, final, run, n_warmup, prepare_chains)


def _end_window(a: WindowAdaptationState) -> WindowAdaptationState:
    """A slow window's end: the inverse mass matrix from its draws; the collector restarts (the step
    size search at the next `prepare` restarts dual averaging)."""
    inverse_mass = adapt.welford_final(a.mass).astype(a.inverse_mass_matrix.dtype)
    return a._replace(inverse_mass_matrix=inverse_mass, mass=jax.tree_util.tree_map(jnp.zeros_like, a.mass))


class _Schedule(NamedTuple):
    is_collecting: np.ndarray   # [n_warmup] bool
    is_window_end: np.ndarray   # [n_warmup] bool
    is_search: np.ndarray       # [n_warmup] bool: run the step-size search before this iteration


def _schedule(n_warmup, adapt_step_size, mass_schedule, initial_buffer, final_buffer,
              base_window) -> _Schedule:
    is_collecting, is_window_end = adapt.window_schedule(n_warmup, initial_buffer, final_buffer, base_window)
    if mass_schedule != "windowed":
        is_collecting, is_window_end = np.zeros_like(is_collecting), np.zeros_like(is_window_end)
    is_search = np.zeros(n_warmup, bool)
    if adapt_step_size and n_warmup:
        is_search[0] = True
        is_search[1:] = is_window_end[:-1]
    return _Schedule(is_collecting, is_window_end, is_search)
