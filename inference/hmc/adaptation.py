"""Warmup adaptation: initial step size, dual averaging, and mass-matrix estimators.

Each adapter is an `(init, update, final)` triple of pure functions over a NamedTuple state, so
they compose inside one `lax.scan` and batch over chains with `jax.vmap`:

- `find_reasonable_step_size`: the doubling/halving heuristic of Hoffman and Gelman (2014, Alg. 4).
- `dual_averaging_*`: step-size adaptation toward a target acceptance rate (Hoffman and Gelman
  2014, section 3.2, after Nesterov 2009).
- `welford_*`: running mean and (co)variance of the positions, for a diagonal or dense inverse
  mass matrix, regularised toward the identity as in Stan.
- `ema_*`: ZhuSuan's exponentially weighted moving variance (`mass_decay`).
- `window_schedule`: Stan's windowed warmup (fast, slow doubling windows, fast).

References:
  Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, JMLR 2014;
  Stan Reference Manual, `HMC algorithm parameters
  <https://mc-stan.org/docs/reference-manual/mcmc.html#hmc-algorithm-parameters>`_;
  Welford, `Note on a method for calculating corrected sums of squares and products
  <https://doi.org/10.1080/00401706.1962.10490022>`_, Technometrics 1962.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike

from inference.hmc import prng
from inference.hmc.kernel import HMCState, energy_change

__all__ = [
    "DualAveragingState", "dual_averaging_init", "dual_averaging_update", "dual_averaging_final",
    "WelfordState", "welford_init", "welford_update", "welford_update_batch", "welford_final",
    "EMAState", "ema_init", "ema_update", "ema_final",
    "window_schedule", "find_reasonable_step_size", "find_reasonable_step_sizes",
]


class DualAveragingState(NamedTuple):
    """Dual-averaging state (all shape `[]`): log step size, its running average, the iteration
    count, the averaged acceptance error, and the shrinkage point mu = log(10 * step size)."""

    log_step_size: jax.Array
    log_step_size_avg: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count (as in optax states)
    error_avg: jax.Array
    mu: jax.Array


def dual_averaging_init(step_size: ArrayLike, dtype: DTypeLike | None = None) -> DualAveragingState:
    """Starts dual averaging at `step_size` with mu = log(10 * step_size).

    Args:
      step_size: the starting step size, shape `[]`.
      dtype: the float dtype of the state (the position's); None takes `step_size`'s, or the
        default float dtype for a Python number.
    """
    dtype = jnp.result_type(step_size, float) if dtype is None else dtype
    log_step_size = jnp.log(jnp.asarray(step_size, dtype))
    zero = jnp.zeros((), dtype)
    mu = jnp.log(10.0) + log_step_size
    return DualAveragingState(log_step_size, zero, jnp.zeros((), jnp.int32), zero, mu)


def dual_averaging_update(state: DualAveragingState, acceptance_rate: ArrayLike,
                          target_acceptance_rate: float = 0.8, gamma: float = 0.05, t0: float = 100.0,
                          kappa: float = 0.75) -> DualAveragingState:
    """One dual-averaging step after observing a transition's `acceptance_rate` (shape `[]`).

    .. math::
      \\bar H_t = (1 - \\tfrac{1}{t + t_0}) \\bar H_{t-1} + \\tfrac{1}{t + t_0}(\\delta - \\alpha_t),\\quad
      \\log \\epsilon_t = \\mu - \\tfrac{\\sqrt t}{\\gamma} \\bar H_t,\\quad
      \\log \\bar\\epsilon_t = t^{-\\kappa} \\log \\epsilon_t + (1 - t^{-\\kappa}) \\log \\bar\\epsilon_{t-1}
    """
    count = state.count + 1
    t = count.astype(state.log_step_size.dtype)
    eta = 1.0 / (t + t0)
    acceptance_rate = jnp.asarray(acceptance_rate, t.dtype)
    error_avg = (1.0 - eta) * state.error_avg + eta * (target_acceptance_rate - acceptance_rate)
    log_step_size = state.mu - jnp.sqrt(t) / gamma * error_avg
    weight = t ** (-kappa)
    log_step_size_avg = weight * log_step_size + (1.0 - weight) * state.log_step_size_avg
    return DualAveragingState(log_step_size, log_step_size_avg, count, error_avg, state.mu)


def dual_averaging_final(state: DualAveragingState) -> jax.Array:
    """The step size to sample with: exp of the averaged log step size."""
    return jnp.exp(state.log_step_size_avg)


class WelfordState(NamedTuple):
    """Running mean `[d]`, sum of squared deviations (`[d]` or `[d, d]`), and count `[]`."""

    mean: jax.Array
    m2: jax.Array
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count (as in optax states)


def welford_init(dim: int, is_dense: bool = False, dtype: DTypeLike = jnp.float32) -> WelfordState:
    """Empty Welford running-moment state for `dim`-dimensional (flattened) positions: mean `[dim]`,
    sum of squared deviations `[dim]` (or `[dim, dim]` when `is_dense`), and the count."""
    m2 = jnp.zeros((dim, dim) if is_dense else (dim,), dtype)
    return WelfordState(jnp.zeros((dim,), dtype), m2, jnp.zeros((), dtype))


def welford_update(state: WelfordState, x: jax.Array) -> WelfordState:
    """Adds one flat position `x` of shape `[d]`."""
    count = state.count + 1
    delta = x - state.mean
    mean = state.mean + delta / count
    if state.m2.ndim == 2:
        m2 = state.m2 + jnp.outer(x - mean, delta)
    else:
        m2 = state.m2 + (x - mean) * delta
    return WelfordState(mean, m2, count)


def welford_update_batch(state: WelfordState, xs: jax.Array) -> WelfordState:
    """Adds a batch of flat positions `xs` of shape `[n, d]` (e.g. all chains' positions at once),
    merging the batch's moments into the running ones (Chan, Golub and LeVeque 1979)."""
    n = jnp.asarray(xs.shape[0], state.count.dtype)
    batch_mean = jnp.mean(xs, axis=0)
    centred = xs - batch_mean
    count = state.count + n
    delta = batch_mean - state.mean
    mean = state.mean + delta * (n / count)
    weight = state.count * n / count
    if state.m2.ndim == 2:
        m2 = state.m2 + centred.T @ centred + weight * jnp.outer(delta, delta)
    else:
        m2 = state.m2 + jnp.sum(centred ** 2, axis=0) + weight * delta ** 2
    return WelfordState(mean, m2, count)


def welford_final(state: WelfordState) -> jax.Array:
    """Stan's regularised (co)variance: n/(n+5) * sample cov + 1e-3 * 5/(n+5) * I."""
    n = state.count
    covariance = state.m2 / jnp.maximum(n - 1, 1)
    shrink = 1e-3 * 5.0 / (n + 5.0)
    if covariance.ndim == 2:
        return (n / (n + 5.0)) * covariance + shrink * jnp.eye(covariance.shape[0], dtype=covariance.dtype)
    return (n / (n + 5.0)) * covariance + shrink


class EMAState(NamedTuple):
    """Exponentially weighted mean and variance `[d]`, with the bias-correction weight `[]`."""

    mean: jax.Array
    variance: jax.Array
    weight: jax.Array


def ema_init(dim: int, dtype: DTypeLike = jnp.float32) -> EMAState:
    """Empty exponentially weighted moment state for `dim`-dimensional positions (ZhuSuan's mass
    adaptation): mean `[dim]`, variance `[dim]` and the bias-correction weight `[]`."""
    return EMAState(jnp.zeros((dim,), dtype), jnp.zeros((dim,), dtype), jnp.zeros((), dtype))


def ema_update(state: EMAState, x: jax.Array, decay: float = 0.99) -> EMAState:
    """ZhuSuan's moving variance: mean <- d mean + (1-d) x; var <- d var + (1-d)(x - mean_old)^2 d."""
    delta = x - state.mean
    mean = state.mean + (1.0 - decay) * delta
    variance = decay * (state.variance + (1.0 - decay) * delta ** 2)
    return EMAState(mean, variance, decay * state.weight + (1.0 - decay))


def ema_final(state: EMAState) -> jax.Array:
    """The bias-corrected moving variance (1 where nothing was collected yet)."""
    variance = state.variance / jnp.maximum(state.weight, 1e-12)
    return jnp.where(state.weight > 0, jnp.maximum(variance, 1e-6), 1.0)


def window_schedule(n_warmup: int, initial_buffer: int = 75, final_buffer: int = 50,
                    base_window: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Stan's windowed warmup: which iterations collect positions and which end a window.

    A fast initial buffer (step size only), slow windows that double in length (positions are
    collected; at each window's end the mass matrix is re-estimated and dual averaging restarts),
    and a fast final buffer. When `n_warmup` is too short for the defaults, the buffers become
    15% / 10% of it; below 20 iterations there are no windows.

    Returns:
      `(is_collecting, is_window_end)`: bool arrays of shape `[n_warmup]`.
    """
    is_collecting = np.zeros(n_warmup, bool)
    is_window_end = np.zeros(n_warmup, bool)
    if n_warmup < 20:
        return is_collecting, is_window_end
    if initial_buffer + base_window + final_buffer > n_warmup:
        initial_buffer, final_buffer = int(0.15 * n_warmup), int(0.1 * n_warmup)
        base_window = n_warmup - initial_buffer - final_buffer
    start, window, end_slow = initial_buffer, base_window, n_warmup - final_buffer
    while start < end_slow:
        stop = start + window
        if stop + 2 * window > end_slow:  # the next window would not fit: stretch this one
            stop = end_slow
        is_collecting[start:stop] = True
        is_window_end[stop - 1] = True
        start, window = stop, 2 * window
    return is_collecting, is_window_end


def find_reasonable_step_size(key: jax.Array, state: HMCState, log_joint_fn: Callable, step_size: ArrayLike,
                              inverse_mass_matrix: ArrayLike, target_acceptance: float = 0.5,
                              max_iterations: int = 100) -> jax.Array:
    """Doubles or halves `step_size` until a one-leapfrog proposal's acceptance crosses 1/2.

    Args:
      key: PRNG key (a fresh momentum each try).
      state: the chain's `HMCState`.
      log_joint_fn, inverse_mass_matrix: as for the kernel.
      step_size: starting step size, shape `[]`.

    Returns:
      The step size, shape `[]`.

    References:
      Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, 2014, Alg. 4.
    """
    step_size = jnp.asarray(step_size, jnp.result_type(*jax.tree_util.tree_leaves(state.position)))
    cond, body = _search(state, log_joint_fn, inverse_mass_matrix, target_acceptance, max_iterations)
    carry = (key, step_size, jnp.zeros((), jnp.int32), jnp.ones((), step_size.dtype), jnp.zeros((), bool))
    return lax.while_loop(cond, body, carry)[1]


def find_reasonable_step_sizes(keys: jax.Array, states: HMCState, log_joint_fn: Callable,
                               step_size: ArrayLike, inverse_mass_matrix: ArrayLike,
                               target_acceptance: float = 0.5, max_iterations: int = 100) -> jax.Array:
    """`find_reasonable_step_size` of C chains in lockstep: `jax.vmap(find_reasonable_step_size)`'s result.

    Every round probes the next step size of each chain whose search is still going (the others
    keep theirs), until none is. JAX's batching of a vmapped `while_loop` computes the same, but
    batches the loop body (a log-joint and its gradient) several times while tracing it.

    Args:
      keys: `[C]` PRNG keys.
      states: the chains' `HMCState`, leaves `[C, ...]`.
      log_joint_fn: as for the kernel.
      step_size: starting step sizes `[C]`.
      inverse_mass_matrix: `[C, d]` or `[C, d, d]`.
      target_acceptance, max_iterations: as for `find_reasonable_step_size`.

    Returns:
      The step sizes, shape `[C]`.

    Raises:
      ValueError: `step_size` is not `[C]`, or the keys, positions or `inverse_mass_matrix` do not
        have the same leading chain axis C (the shapes are given).
    """
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(states.position))
    step_size = jnp.asarray(step_size, dtype)
    n_chains = jnp.shape(keys)[0] if jnp.ndim(keys) else None
    leading = {jnp.shape(x)[:1] for x in jax.tree_util.tree_leaves(states.position)}
    if (n_chains is None or jnp.shape(step_size) != (n_chains,) or leading != {(n_chains,)}
            or jnp.shape(inverse_mass_matrix)[:1] != (n_chains,)):
        raise ValueError(f"find_reasonable_step_sizes takes one key per chain ({jnp.shape(keys)} given), "
                         f"step_size [C] ({jnp.shape(step_size)}), positions with a leading chain axis "
                         f"({sorted(leading)}) and inverse_mass_matrix [C, d] or [C, d, d] "
                         f"({jnp.shape(inverse_mass_matrix)})")
    search = lambda state, imm: _search(state, log_joint_fn, imm, target_acceptance, max_iterations)
    each_chain = lambda which, carry: jax.vmap(lambda st, imm, c: search(st, imm)[which](c))(
        states, inverse_mass_matrix, carry)
    going = functools.partial(each_chain, 0)

    def body(carry):
        is_going = going(carry)
        per_chain = lambda x: jnp.broadcast_to(
            jnp.reshape(is_going, is_going.shape + (1,) * (jnp.ndim(x) - 1)), jnp.shape(x))
        new = each_chain(1, carry)
        return jax.tree_util.tree_map(lambda a, b: lax.select(per_chain(a), a, b), new, carry)

    carry = (keys, step_size, jnp.zeros((n_chains,), jnp.int32), jnp.ones((n_chains,), dtype),
             jnp.zeros((n_chains,), bool))
    return lax.while_loop(lambda carry: jnp.any(going(carry)), body, carry)[1]


def _search(state, log_joint_fn, inverse_mass_matrix, target_acceptance, max_iterations):
    """`(cond, body)` of one chain's step-size search, over `(key, eps, i, direction, is_done)`."""

    def log_accept(key, eps):
        _, energy0, energy1 = energy_change(log_joint_fn, state, key, eps, inverse_mass_matrix, 1)
        return jnp.where(jnp.isfinite(energy1), energy0 - energy1, -jnp.inf)

    target_log_accept = float(np.log(target_acceptance))

    def cond(carry):
        _, _, i, _, is_done = carry
        return (~is_done) & (i <= max_iterations)

    def body(carry):
        # one probe per iteration (so the log-joint appears once in the program): iteration 0 probes
        # the starting step size and picks the direction, later ones double or halve it
        key, eps, i, direction, _ = carry
        key, key_try = prng.split(key)
        is_first = i == 0
        trial = jnp.where(is_first, eps, (eps * 2.0 ** direction).astype(eps.dtype))
        gap = log_accept(key_try, trial) - target_log_accept
        direction = jnp.where(is_first, jnp.where(gap > 0, 1.0, -1.0).astype(eps.dtype), direction)
        crossed = ~is_first & (direction * gap <= 0)
        # keep the last step size on the good side when growing; the first small enough when shrinking
        eps = jnp.where(is_first | (crossed & (direction > 0)), eps, trial)
        return key, eps, i + 1, direction, crossed

    return cond, body
