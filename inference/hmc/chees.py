"""ChEES-HMC: jittered trajectory lengths tuned across many chains, all chains stepping in lockstep.

Every chain runs HMC with the same step size and the same number of leapfrog steps at every
iteration, so vmapped chains never wait for each other (the many-chain regime on accelerators):

- **Jitter**: transition t integrates for `u_t * T` (T the trajectory length), i.e.
  `ceil(u_t * T / step_size)` leapfrog steps, with u_t from the base-2 Halton sequence (an even
  spread of lengths, no resonances; `jitter_amount` < 1 narrows it to [1 - jitter_amount, 1]).
- **Trajectory length**: Adam ascent on log T of the ChEES criterion (Change in the Estimator of
  the Expected Square), estimated over the chains:
  ChEES = 1/4 E[(||x' - E x'||^2 - ||x - E x||^2)^2], whose gradient along the trajectory is
  u_t T (||x' - E x'||^2 - ||x - E x||^2) <x' - E x', M^{-1} p'>, averaged over chains with their
  acceptance probabilities as weights; norms are measured in the metric's whitened coordinates,
  where the pairing <x' - E x', p'> is unchanged. Updates are clipped to +-0.35 and iterate-averaged
  with weight t^(-decay_rate); T stays in [step_size, max_leapfrogs * step_size].
- **Step size**: dual averaging on the harmonic mean of the chains' acceptance probabilities
  (divergent transitions excluded), toward `target_acceptance_rate` (0.651, optimal for HMC).
- **Mass** (optional): a diagonal inverse mass matrix pooled over all chains' positions in Stan's
  slow windows; at each window's end the step-size search restarts dual averaging.

References:
  Hoffman, Radul and Sountsov, `An Adaptive-MCMC Scheme for Setting Trajectory Lengths in
  Hamiltonian Monte Carlo <https://proceedings.mlr.press/v130/hoffman21a.html>`_, AISTATS 2021;
  Beskos et al., `Optimal tuning of the hybrid Monte Carlo algorithm
  <https://arxiv.org/abs/1001.4460>`_, Bernoulli 2013 (the 0.651 acceptance target);
  Owen, `A randomized Halton algorithm in R <https://arxiv.org/abs/1706.02808>`_, 2017.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

from inference.hmc import adaptation as adapt
from inference.hmc.base import HMCFamily
from inference.hmc.driver import ChainWarmup, Tuned
from inference.hmc.kernel import HMCState, transition
from inference.hmc.window import clip_step_size

__all__ = ["ChEES", "ChEESInfo", "ChEESAdaptationState", "build_kernel", "chees_adaptation", "chees_gradient",
           "halton", "n_leapfrogs_at"]

_LOG_UPDATE_CLIP = 0.35   # at most a factor e^0.35 ~ 1.4 per iteration (TFP's reference implementation)


class ChEESInfo(NamedTuple):
    """Diagnostics of one jittered HMC transition (scalars unless noted).

    Attributes:
      acceptance_rate, is_accepted, is_divergent, energy: as `inference.hmc.HMCInfo`.
      n_leapfrogs: leapfrog steps of this transition.
      initial_position: the flat position the transition started from, `[d]`.
      proposal_position: the trajectory's end before the Metropolis test, `[d]`.
      proposal_momentum: its momentum, `[d]`.
    """

    acceptance_rate: jax.Array
    is_accepted: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    n_leapfrogs: jax.Array
    initial_position: jax.Array
    proposal_position: jax.Array
    proposal_momentum: jax.Array


def build_kernel(divergence_threshold: float = 1000.0) -> Callable[..., tuple[HMCState, ChEESInfo]]:
    """The jittered HMC transition on flat positions.

    Returns:
      `kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix, n_leapfrogs) ->
      (HMCState, ChEESInfo)` with `n_leapfrogs` a traced int (a rolled loop: when it is the same
      for all vmapped chains, they step in lockstep).
    """

    def kernel(key, state: HMCState, log_joint_fn, step_size, inverse_mass_matrix, n_leapfrogs):
        new_state, info, end = transition(key, state, log_joint_fn, step_size, inverse_mass_matrix,
                                          jnp.asarray(n_leapfrogs), divergence_threshold)
        return new_state, ChEESInfo(info.acceptance_rate, info.is_accepted, info.is_divergent, info.energy,
                                    jnp.asarray(n_leapfrogs, jnp.int32), state.position, end.position,
                                    end.momentum)

    return kernel


def halton(index: ArrayLike, n_bits: int = 20) -> jax.Array:
    """The base-2 Halton (van der Corput) number of `index + 1`, in (0, 1); `index` an int array."""
    index = jnp.asarray(index, jnp.int32) + 1
    bits = jnp.arange(n_bits, dtype=jnp.int32)
    digits = jnp.right_shift(index, bits) & 1
    return jnp.sum(digits * 0.5 ** (bits + 1).astype(jnp.float32))


class ChEESAdaptationState(NamedTuple):
    """Cross-chain warmup state (shared by all chains; shapes `[]` unless noted).

    Attributes:
      dual: dual averaging of the log step size.
      step_size: the step size of the next transition.
      log_trajectory_length: log T of the next transition.
      log_trajectory_length_avg: its iterate average (the final value).
      optimizer: the Adam state of log T.
      count: adaptation steps taken.
      inverse_mass_matrix: `[d]`, diagonal.
      mass: the pooled Welford state of the current window (`()` without mass adaptation).
    """

    dual: adapt.DualAveragingState
    step_size: jax.Array
    log_trajectory_length: jax.Array
    log_trajectory_length_avg: jax.Array
    optimizer: Any
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count (as in optax states)
    inverse_mass_matrix: jax.Array
    mass: Any


def chees_gradient(info: ChEESInfo, jitter: ArrayLike, trajectory_length: ArrayLike,
                   inverse_mass_matrix: ArrayLike) -> jax.Array:
    """The chains' acceptance-weighted estimate of d ChEES / d log T (see the module docstring).

    Args:
      info: a `ChEESInfo` batched over chains (`[n_chains, ...]`).
      jitter: u_t of this transition, `[]`.
      trajectory_length: T, `[]`.
      inverse_mass_matrix: `[d]`.

    Returns:
      The gradient, shape `[]` (0 when no chain has a usable proposal).
    """
    weight = jnp.where(info.is_divergent | ~jnp.all(jnp.isfinite(info.proposal_position), -1), 0.0,
                       info.acceptance_rate)
    scale = jax.lax.rsqrt(inverse_mass_matrix)
    x0 = info.initial_position
    x1 = jnp.where(jnp.isfinite(info.proposal_position), info.proposal_position, 0.0)
    x0c = x0 - jnp.mean(x0, axis=0)
    x1c = x1 - jnp.sum(weight[:, None] * x1, 0) / (jnp.sum(weight) + 1e-20)
    change = jnp.sum((x1c * scale) ** 2, -1) - jnp.sum((x0c * scale) ** 2, -1)
    per_chain = jitter * trajectory_length * change * jnp.sum(x1c * info.proposal_momentum, -1)
    per_chain = jnp.where(jnp.isfinite(per_chain) & (weight > 1e-4), per_chain, 0.0)
    return jnp.sum(weight * per_chain) / (jnp.sum(weight) + 1e-20)


def chees_adaptation(log_joint_fn: Callable, n_warmup: int, *, target_acceptance_rate: float = 0.651,
                     learning_rate: float = 0.025, decay_rate: float = 0.5, max_leapfrogs: int = 1000,
                     jitter_amount: float = 1.0, initial_trajectory_length: float | None = None,
                     adapt_mass: bool = True, gamma: float = 0.05, t0: float = 10.0,
                     kappa: float = 0.75) -> ChainWarmup:
    """The ChEES warmup over all chains (a `ChainWarmup` for `inference.hmc.driver.sample_chains`).

    Args:
      log_joint_fn: `flat position [d] -> log p`.
      n_warmup: warmup iterations.
      target_acceptance_rate: for the harmonic mean of the chains' acceptance probabilities.
      learning_rate: Adam's learning rate on log T.
      decay_rate: iterate averaging of log T with weight t^(-decay_rate).
      max_leapfrogs: T is kept below `max_leapfrogs * step_size`.
      jitter_amount: in [0, 1]; the jitter u lies in [1 - jitter_amount, 1].
      initial_trajectory_length: T at the start (None: one step).
      adapt_mass: a diagonal inverse mass matrix pooled over chains in Stan's windows.
      gamma, t0, kappa: dual averaging's constants.

    Returns:
      A `ChainWarmup` whose tuned parameters are shared by all chains: step size `[]`, inverse
      mass `[d]`, `{"trajectory_length": []}`.
    """
    optimizer = optax.adam(learning_rate, b1=0.0, b2=0.95)
    is_collecting, is_window_end = adapt.window_schedule(n_warmup)
    if not adapt_mass:
        is_collecting, is_window_end = np.zeros_like(is_collecting), np.zeros_like(is_window_end)
    is_search = np.concatenate([[True], is_window_end[:-1]])[:n_warmup]

    def init(keys, states: HMCState, tuned: Tuned) -> ChEESAdaptationState:
        dtype = states.position.dtype
        log_t = jnp.log(jnp.asarray(tuned.step_size, dtype))
        mass = adapt.welford_init(states.position.shape[1], False, dtype) if adapt_mass else ()
        return ChEESAdaptationState(adapt.dual_averaging_init(tuned.step_size, dtype),
                                    jnp.asarray(tuned.step_size, dtype), log_t, log_t, optimizer.init(log_t),
                                    jnp.zeros((), jnp.int32), tuned.inverse_mass_matrix, mass)

    def prepare(keys, a: ChEESAdaptationState, states: HMCState, i) -> ChEESAdaptationState:
        def search(a):
            steps = jax.vmap(adapt.find_reasonable_step_size, in_axes=(0, 0, None, None, None))(
                keys, states, log_joint_fn, a.step_size, a.inverse_mass_matrix)
            step = clip_step_size(jnp.exp(jnp.mean(jnp.log(steps))))
            a = a._replace(step_size=step, dual=adapt.dual_averaging_init(step, step.dtype))
            if initial_trajectory_length is None:
                start = step
            else:
                start = jnp.asarray(initial_trajectory_length, step.dtype)
            log_t = jnp.where(i == 0, jnp.log(start), a.log_trajectory_length)
            return a._replace(log_trajectory_length=log_t,
                              log_trajectory_length_avg=jnp.where(i == 0, log_t, a.log_trajectory_length_avg))

        return lax.cond(jnp.asarray(is_search)[i], search, lambda a: a, a)

    def tuned(a: ChEESAdaptationState) -> Tuned:
        length = jnp.exp(a.log_trajectory_length)
        return Tuned(a.step_size, a.inverse_mass_matrix, {"trajectory_length": length})

    def update(a: ChEESAdaptationState, i, states: HMCState, info: ChEESInfo) -> ChEESAdaptationState:
        dtype = a.step_size.dtype
        acceptance = jnp.maximum(info.acceptance_rate, 1e-10)
        usable = ~info.is_divergent
        harmonic = jnp.sum(usable) / jnp.sum(jnp.where(usable, 1.0 / acceptance, 0.0))
        harmonic = jnp.where(jnp.isfinite(harmonic), harmonic, 0.0)
        dual = adapt.dual_averaging_update(a.dual, harmonic, target_acceptance_rate, gamma, t0, kappa)
        step = clip_step_size(jnp.exp(dual.log_step_size))
        u = jitter(i, dtype)
        grad = chees_gradient(info, u, jnp.exp(a.log_trajectory_length), a.inverse_mass_matrix)
        updates, opt = optimizer.update(-grad, a.optimizer)
        log_t = a.log_trajectory_length + jnp.clip(updates, -_LOG_UPDATE_CLIP, _LOG_UPDATE_CLIP)
        log_t = jnp.clip(log_t, jnp.log(step), jnp.log(max_leapfrogs * step))
        count = a.count + 1
        weight = count.astype(dtype) ** (-decay_rate)
        log_t_avg = weight * log_t + (1.0 - weight) * a.log_trajectory_length_avg
        a = ChEESAdaptationState(dual, step, log_t, log_t_avg, opt, count, a.inverse_mass_matrix, a.mass)
        if adapt_mass:
            collect = lambda m: adapt.welford_update_batch(m, states.position)
            mass = lax.cond(jnp.asarray(is_collecting)[i], collect, lambda m: m, a.mass)
            a = lax.cond(jnp.asarray(is_window_end)[i], _end_window, lambda a: a, a._replace(mass=mass))
        return a

    def final(a: ChEESAdaptationState) -> Tuned:
        step = clip_step_size(adapt.dual_averaging_final(a.dual)).astype(a.step_size.dtype)
        length = jnp.clip(jnp.exp(a.log_trajectory_length_avg), step, max_leapfrogs * step)
        return Tuned(step, a.inverse_mass_matrix, {"trajectory_length": length})

    def jitter(index, dtype):
        return (halton(index) * jitter_amount + (1.0 - jitter_amount)).astype(dtype)

    return ChainWarmup(init, prepare, tuned, update, final)


def _end_window(a: ChEESAdaptationState) -> ChEESAdaptationState:
    inverse_mass = adapt.welford_final(a.mass).astype(a.inverse_mass_matrix.dtype)
    return a._replace(inverse_mass_matrix=inverse_mass, mass=jax.tree_util.tree_map(jnp.zeros_like, a.mass))


def n_leapfrogs_at(index: ArrayLike, step_size: ArrayLike, trajectory_length: ArrayLike, jitter_amount: float,
                   max_leapfrogs: int) -> jax.Array:
    """`ceil(u_index * T / step_size)` leapfrog steps, in [1, max_leapfrogs] (shared by all chains)."""
    u = halton(index) * jitter_amount + (1.0 - jitter_amount)
    steps = jnp.ceil(u * trajectory_length / step_size)
    return jnp.clip(jnp.where(jnp.isfinite(steps), steps, 1), 1, max_leapfrogs).astype(jnp.int32)


class ChEES(HMCFamily):
    """ChEES-HMC: jittered HMC whose trajectory length and step size are tuned across chains.

    Args:
      step_size: the starting step size (the step-size search starts from it).
      target_acceptance_rate: dual averaging's target for the chains' harmonic-mean acceptance.
      learning_rate: Adam's learning rate on the log trajectory length.
      decay_rate: iterate averaging weight t^(-decay_rate) of log T.
      max_leapfrogs: most leapfrog steps per transition.
      jitter_amount: in (0, 1]: the trajectory is `u * T` with u in [1 - jitter_amount, 1].
      initial_trajectory_length: T at the start of warmup (None: one step).
      adapt_mass: adapt a diagonal inverse mass matrix pooled over chains (Stan's windows).
      divergence_threshold: energy error (nats) above which a transition is divergent.

    Raises:
      ValueError: an argument out of range.

    Example:
      >>> result = ChEES().sample(key, model, {"y": y}, n_samples=500, n_warmup=500, n_chains=64)
      >>> result.info.trajectory_length   # [64], the same for every chain

    References:
      Hoffman, Radul and Sountsov, `An Adaptive-MCMC Scheme for Setting Trajectory Lengths in
      Hamiltonian Monte Carlo <https://proceedings.mlr.press/v130/hoffman21a.html>`_, AISTATS 2021.
    """

    name = "ChEES"
    tuned_axes = Tuned(None, None, {"trajectory_length": None})
    min_chains = 2

    def __init__(self, step_size: float = 1.0, target_acceptance_rate: float = 0.651,
                 learning_rate: float = 0.025, decay_rate: float = 0.5, max_leapfrogs: int = 1000,
                 jitter_amount: float = 1.0,
                 initial_trajectory_length: float | None = None, adapt_mass: bool = True,
                 divergence_threshold: float = 1000.0):
        if not (np.isfinite(step_size) and step_size > 0):
            raise ValueError(f"ChEES: step_size must be a finite positive number, got {step_size!r}")
        if not 0.0 < target_acceptance_rate < 1.0:
            raise ValueError(f"target_acceptance_rate must be in (0, 1), got {target_acceptance_rate!r}")
        if not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"ChEES: learning_rate must be a finite positive number, got {learning_rate!r}")
        if not 0.0 < jitter_amount <= 1.0:
            raise ValueError(f"jitter_amount must be in (0, 1], got {jitter_amount!r}")
        if not (isinstance(max_leapfrogs, (int, np.integer)) and max_leapfrogs >= 1):
            raise ValueError(f"max_leapfrogs must be a positive int, got {max_leapfrogs!r}")
        self.step_size, self.target_acceptance_rate = float(step_size), float(target_acceptance_rate)
        self.learning_rate, self.decay_rate = float(learning_rate), float(decay_rate)
        self.max_leapfrogs, self.jitter_amount = int(max_leapfrogs), float(jitter_amount)
        self.initial_trajectory_length = initial_trajectory_length
        self.adapt_mass, self.divergence_threshold = bool(adapt_mass), float(divergence_threshold)

    def _config_key(self):
        return (self.target_acceptance_rate, self.learning_rate, self.decay_rate, self.max_leapfrogs,
                self.jitter_amount, self.initial_trajectory_length, self.adapt_mass,
                self.divergence_threshold)

    def _kernel(self):
        return build_kernel(self.divergence_threshold)

    def _kernel_args(self, tuned: Tuned, index):
        length = tuned.parameters["trajectory_length"]
        steps = n_leapfrogs_at(index, tuned.step_size, length, self.jitter_amount, self.max_leapfrogs)
        return {"n_leapfrogs": steps}, {"n_leapfrogs": None}

    def _warmup(self, log_joint_fn, n_warmup):
        return chees_adaptation(log_joint_fn, n_warmup, target_acceptance_rate=self.target_acceptance_rate,
                                learning_rate=self.learning_rate, decay_rate=self.decay_rate,
                                max_leapfrogs=self.max_leapfrogs, jitter_amount=self.jitter_amount,
                                initial_trajectory_length=self.initial_trajectory_length,
                                adapt_mass=self.adapt_mass)

    def _initial_tuned(self, step_size, n_chains, dim, dtype) -> Tuned:
        step = jnp.asarray(step_size, dtype)
        return Tuned(step, jnp.ones(dim, dtype), {"trajectory_length": step})

    def _record_info(self, info, states):
        record = super()._record_info(info, states)
        record["n_leapfrogs"] = info.n_leapfrogs
        return record

    def _sample_info(self, out, n_chains):
        info = super()._sample_info(out, n_chains)
        length = jnp.broadcast_to(out.tuned.parameters["trajectory_length"], (n_chains,))
        return info._replace(trajectory_length=length)
