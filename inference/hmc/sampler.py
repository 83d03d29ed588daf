"""`HMC`: ZhuSuan's sampler interface over the pure kernel and adaptation functions.

`HMC(...)` binds configuration; `sample(key, meta_bn, observed, init, ...)` runs warmup and
sampling for all chains as one jitted program (chains by `jax.vmap`, time by `lax.scan`) and
returns samples in each latent's own space. `run(key, log_joint_fn, init_position, ...)` does the
same for any `position -> log p` function, with no DSL.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from inference.hmc import adaptation as adapt
from inference.hmc.kernel import HMCState, build_kernel, init
from inference.log_joint import make_log_joint
from inference.progress import ProgressBar, progress_callback

_STAN_MIN_WARMUP = 150  # Stan's default initial buffer + first window + final buffer


def _caller_stacklevel() -> int:
    """The `stacklevel` that points a warning at the first frame outside this file (the user's call)."""
    level, frame = 2, sys._getframe(2)   # 1: the function that warns; 2: its caller
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    return level

__all__ = ["HMC", "HMCSampleInfo"]

_MASS_SCHEDULES = ("windowed", "exponential")


class HMCSampleInfo(NamedTuple):
    """What a run reports besides the samples.

    Attributes:
      acceptance_rate: `[n_chains, n_samples]`, Metropolis acceptance probability per transition.
      is_divergent: `[n_chains, n_samples]`, energy error above the divergence threshold.
      energy: `[n_chains, n_samples]`, the Hamiltonian of each kept state (nats).
      log_joint: `[n_chains, n_samples]`, log p of each kept state on the unconstrained space
        (log p(x, z) plus the log-Jacobian of constrained latents; nats).
      step_size: `[n_chains]`, the step size sampling used (after adaptation).
      inverse_mass_matrix: `[n_chains, d]` (diagonal) or `[n_chains, d, d]` (dense), over the
        raveled unconstrained position of d scalars.
      warmup_acceptance_rate: `[n_chains, n_warmup]`.
    """

    acceptance_rate: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    log_joint: jax.Array
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    warmup_acceptance_rate: jax.Array

    @property
    def n_divergences(self) -> jax.Array:
        """Divergent transitions per chain, `[n_chains]`."""
        return jnp.sum(self.is_divergent, axis=-1)


class _Warmup(NamedTuple):
    hmc: HMCState
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    dual: adapt.DualAveragingState
    mass: Any


class HMC:
    """Hamiltonian Monte Carlo with step-size and mass adaptation (ZhuSuan's `HMC` arguments).

    Args:
      step_size: the leapfrog step size (position units); the starting point when adapted.
      n_leapfrogs: leapfrog steps per transition (a positive int).
      adapt_step_size: adapt the step size during warmup by dual averaging (None = False, as in
        ZhuSuan); the search of Hoffman and Gelman (2014, Alg. 4) picks the starting value.
      target_acceptance_rate: the acceptance probability dual averaging aims at, in (0, 1).
      gamma, t0, kappa: dual-averaging constants (Hoffman and Gelman 2014, section 3.2).
      adapt_mass: adapt the inverse mass matrix during warmup (None = False).
      mass_schedule: "windowed" (Stan's windows of Welford (co)variance, the default) or
        "exponential" (ZhuSuan's exponentially weighted variance, diagonal only).
      mass_collect_iters: for "exponential", the warmup iteration from which the mass is used.
      mass_decay: for "exponential", the moving-average decay.
      dense_mass: estimate a dense inverse mass matrix (windowed schedule only).
      divergence_threshold: energy error (nats) above which a transition is divergent.

    Raises:
      ValueError: an argument out of range, or an unknown `mass_schedule`.

    Example:
      >>> hmc = HMC(step_size=0.1, n_leapfrogs=10, adapt_step_size=True, adapt_mass=True)
      >>> samples, info = hmc.sample(key, model, {"y": y}, {"w": w0}, n_samples=500, n_warmup=500,
      ...                            n_chains=4)
      >>> samples["w"].shape   # [n_chains, n_samples, *w.shape]

    References:
      Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011;
      Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, 2014;
      Shi et al., `ZhuSuan <https://arxiv.org/abs/1709.05870>`_, 2017.
    """

    def __init__(self, step_size: float = 1.0, n_leapfrogs: int = 10, adapt_step_size: bool | None = None,
                 target_acceptance_rate: float = 0.8, gamma: float = 0.05, t0: float = 100.0,
                 kappa: float = 0.75, adapt_mass: bool | None = None, mass_schedule: str = "windowed",
                 mass_collect_iters: int = 10, mass_decay: float = 0.99, dense_mass: bool = False,
                 divergence_threshold: float = 1000.0):
        if not step_size > 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        if not isinstance(n_leapfrogs, (int, np.integer)) or n_leapfrogs < 1:
            raise ValueError(f"n_leapfrogs must be a positive int, got {n_leapfrogs!r}")
        if not 0 < target_acceptance_rate < 1:
            raise ValueError(f"target_acceptance_rate must be in (0, 1), got {target_acceptance_rate}")
        if mass_schedule not in _MASS_SCHEDULES:
            raise ValueError(f"mass_schedule must be one of {_MASS_SCHEDULES}, got {mass_schedule!r}")
        if dense_mass and mass_schedule == "exponential":
            raise ValueError("dense_mass needs mass_schedule='windowed' (the exponential one is diagonal)")
        if not 0 < mass_decay < 1:
            raise ValueError(f"mass_decay must be in (0, 1), got {mass_decay}")
        self.step_size = float(step_size)
        self.n_leapfrogs = int(n_leapfrogs)
        self.adapt_step_size = bool(adapt_step_size)
        self.target_acceptance_rate = float(target_acceptance_rate)
        self.gamma, self.t0, self.kappa = float(gamma), float(t0), float(kappa)
        self.adapt_mass = bool(adapt_mass)
        self.mass_schedule = mass_schedule
        self.mass_collect_iters = int(mass_collect_iters)
        self.mass_decay = float(mass_decay)
        self.dense_mass = bool(dense_mass)
        self.kernel = build_kernel(divergence_threshold)
        self._compiled = {}   # build_run's jitted functions, so repeated runs do not recompile

    # ------------------------------------------------------------------ DSL entry point
    def sample(self, key: jax.Array, meta_bn, observed: dict, init: dict | None = None, n_samples: int = 1000,
               n_warmup: int = 1000, n_chains: int | None = None, thinning: int = 1,
               progress_bar: bool = False) -> tuple[dict, HMCSampleInfo]:
        """Samples the latents of `meta_bn` given `observed`.

        Args:
          key: PRNG key.
          meta_bn: a `ppl.MetaBayesianNet`; its stochastic nodes not in `observed` are the latents.
          observed: `{name: value}`.
          init: `{latent: value}` in the latent's own space, each of the latent's shape (all
            chains start there) or with a leading `[n_chains]` axis; latents left out start
            uniformly in [-2, 2] on the unconstrained space (NumPyro's `init_to_uniform`).
          n_samples: samples kept per chain (after thinning).
          n_warmup: adaptation iterations, discarded.
          n_chains: number of chains; None takes it from a per-chain `init`, else 1.
          thinning: keep every `thinning`-th transition.
          progress_bar: show a tqdm bar on the host.

        Returns:
          `(samples, info)`: `samples[name]` has shape `[n_chains, n_samples, *latent_shape]`, in
          the latent's own (constrained) space; `info` is an `HMCSampleInfo`.

        Raises:
          ValueError: an `init` value of the wrong shape (names the latent and both shapes), or
            bad sizes; see also `inference.log_joint.latent_specs`.
        """
        key_trace, key_init, key_run = jax.random.split(key, 3)
        model = make_log_joint(meta_bn, observed, key=key_trace)
        init = dict(init or {})
        n_chains = self._infer_n_chains(model.specs, init, n_chains)
        position = _initial_positions(key_init, model, init, n_chains)
        return self.run(key_run, model.log_joint_fn, position, n_samples, n_warmup, thinning=thinning,
                        progress_bar=progress_bar, transform_fn=model.to_constrained)

    @staticmethod
    def _infer_n_chains(specs, init, n_chains):
        unknown = sorted(set(init) - set(specs))
        if unknown:
            raise ValueError(f"init gives {unknown}, but the latents are {list(specs)}")
        found = set()
        for name, value in init.items():
            shape, expected = tuple(jnp.shape(value)), specs[name].shape
            if shape == expected:
                continue
            if len(shape) == len(expected) + 1 and shape[1:] == expected:
                found.add(shape[0])
            else:
                raise ValueError(f"init[{name!r}] has shape {shape}; expected the latent's shape {expected} "
                                 f"or [n_chains, *{expected}]")
        if len(found) > 1 or (found and n_chains is not None and found != {n_chains}):
            raise ValueError(f"init has per-chain axes of sizes {sorted(found)} but n_chains={n_chains}")
        n_chains = n_chains if n_chains is not None else (found.pop() if found else 1)
        if n_chains < 1:
            raise ValueError(f"n_chains must be a positive int, got {n_chains}")
        return int(n_chains)

    # ------------------------------------------------------------------ any log_joint_fn
    def run(self, key: jax.Array, log_joint_fn: Callable, init_position: Any, n_samples: int,
            n_warmup: int = 0, thinning: int = 1, progress_bar: bool = False,
            transform_fn: Callable | None = None) -> tuple[Any, HMCSampleInfo]:
        """Samples `log_joint_fn` from per-chain starting points (no DSL needed).

        Args:
          key: PRNG key.
          log_joint_fn: `position -> log p`, shape `[]`, on an unconstrained space.
          init_position: a pytree whose leaves have a leading `[n_chains]` axis.
          n_samples, n_warmup, thinning, progress_bar: see `sample`.
          transform_fn: optional map applied to each kept position (e.g. to a constrained space).

        Returns:
          `(samples, info)`: `samples` is `init_position`'s structure (or `transform_fn`'s
          output) with leaves of shape `[n_chains, n_samples, ...]`; `info` an `HMCSampleInfo`.
        """
        leaves = jax.tree_util.tree_leaves(init_position)
        if not leaves:
            raise ValueError("init_position has no arrays")
        n_chains = jnp.shape(leaves[0])[0] if jnp.ndim(leaves[0]) else None
        if n_chains is None or any(jnp.ndim(x) == 0 or jnp.shape(x)[0] != n_chains for x in leaves):
            raise ValueError("every leaf of init_position needs the same leading [n_chains] axis, got shapes "
                             f"{[jnp.shape(x) for x in leaves]}")
        keys = jax.random.split(key, n_chains)
        keys, init_position = _shard_chains((keys, init_position), n_chains)
        bar = ProgressBar(n_warmup + n_samples * thinning, is_enabled=progress_bar)
        run_fn = self.build_run(log_joint_fn, n_samples, n_warmup, thinning, transform_fn,
                                bar if bar.is_enabled else None)
        try:
            return run_fn(keys, init_position)
        finally:
            bar.close()

    def build_run(self, log_joint_fn: Callable, n_samples: int, n_warmup: int = 0, thinning: int = 1,
                  transform_fn: Callable | None = None, progress_bar: ProgressBar | None = None):
        """The whole run as one jitted function `(keys [n_chains], init_position) -> (samples, info)`.

        Compile it once and call it many times (benchmarks); see `run` for the arguments.

        Raises:
          ValueError: negative sizes or `thinning < 1`.

        Warns:
          UserWarning: windowed mass adaptation with `0 < n_warmup < 150` (Stan's minimum schedule).
        """
        if n_samples < 1 or n_warmup < 0 or thinning < 1:
            raise ValueError(f"need n_samples >= 1, n_warmup >= 0, thinning >= 1; got {n_samples}, "
                             f"{n_warmup}, {thinning}")
        if self.adapt_mass and self.mass_schedule == "windowed" and 0 < n_warmup < _STAN_MIN_WARMUP:
            warnings.warn(
                f"HMC: n_warmup={n_warmup} is shorter than the {_STAN_MIN_WARMUP} iterations of Stan's "
                f"windowed adaptation (75 step-size-only + 25 mass window + 50 step-size-only); the "
                f"stages are shrunk to 15% / 75% / 10%, leaving {int(0.1 * n_warmup)} iterations to "
                f"re-tune the step size after the last mass update. Expect a poor step "
                f"size (low or zero acceptance) in high dimensions; use more warmup or adapt_mass=False.",
                UserWarning, stacklevel=_caller_stacklevel())
        cache_key = (log_joint_fn, n_samples, n_warmup, thinning, transform_fn, progress_bar)
        if cache_key in self._compiled:
            return self._compiled[cache_key]
        transform_fn = transform_fn or (lambda position: position)
        every = max(1, (n_warmup + n_samples * thinning) // 100)

        def run(keys, positions):
            states = jax.vmap(lambda p: init(p, log_joint_fn))(positions)
            key_search, key_warmup, key_sample = _split_chain_keys(keys)
            warm = jax.vmap(self._warmup_init, in_axes=(0, 0, None))(key_search, states, log_joint_fn)
            warm, warmup_acceptance = self._warmup(key_warmup, warm, log_joint_fn, n_warmup, every,
                                                   progress_bar)
            states, outputs = self._sample(key_sample, warm, log_joint_fn, n_samples, thinning, n_warmup,
                                           every, progress_bar, transform_fn)
            samples, acc, div, energy, log_joint = jax.tree_util.tree_map(
                lambda x: jnp.swapaxes(x, 0, 1), outputs)
            info = HMCSampleInfo(acc, div, energy, log_joint, warm.step_size, warm.inverse_mass_matrix,
                                 warmup_acceptance.T)
            return samples, info

        self._compiled[cache_key] = jax.jit(run)
        return self._compiled[cache_key]

    # ------------------------------------------------------------------ warmup
    def _warmup_init(self, key, state, log_joint_fn) -> _Warmup:
        flat, _ = ravel_pytree(state.position)
        dim, dtype = flat.shape[0], flat.dtype
        inverse_mass = jnp.eye(dim, dtype=dtype) if self.dense_mass else jnp.ones(dim, dtype)
        step_size = jnp.asarray(self.step_size, jnp.float32)
        if self.adapt_step_size:
            step_size = adapt.find_reasonable_step_size(key, state, log_joint_fn, step_size, inverse_mass)
        if self.mass_schedule == "exponential":
            mass = adapt.ema_init(dim, dtype)
        else:
            mass = adapt.welford_init(dim, self.dense_mass, dtype)
        return _Warmup(state, step_size, inverse_mass, adapt.dual_averaging_init(step_size), mass)

    def _warmup(self, keys, warm, log_joint_fn, n_warmup, every, bar):
        if n_warmup == 0:
            return warm, jnp.zeros((0, keys.shape[0]), jnp.float32)
        is_collecting, is_window_end = adapt.window_schedule(n_warmup)
        if not self.adapt_mass or self.mass_schedule != "windowed":
            is_collecting, is_window_end = np.zeros_like(is_collecting), np.zeros_like(is_window_end)
        chain_step = jax.vmap(self._warmup_step, in_axes=(0, 0, None, None, None, None))

        def body(warm, xs):
            i, collect, window_end = xs
            keys_i = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i)
            warm, acceptance = chain_step(keys_i, warm, log_joint_fn, i, collect, window_end)
            progress_callback(i, every, bar)
            return warm, acceptance

        xs = (jnp.arange(n_warmup), jnp.asarray(is_collecting), jnp.asarray(is_window_end))
        warm, acceptance = lax.scan(body, warm, xs)
        if self.adapt_step_size:
            warm = warm._replace(step_size=_clip_step_size(jax.vmap(adapt.dual_averaging_final)(warm.dual)))
        return warm, acceptance

    def _warmup_step(self, key, warm: _Warmup, log_joint_fn, i, is_collecting, is_window_end):
        key_kernel, key_search = jax.random.split(key)
        # a rolled loop here (an array trip count): compiling a second unrolled trajectory costs more
        # than the loop overhead saves during warmup
        state, info = self.kernel(key_kernel, warm.hmc, log_joint_fn, warm.step_size,
                                  warm.inverse_mass_matrix, jnp.asarray(self.n_leapfrogs))
        dual, step_size = warm.dual, warm.step_size
        if self.adapt_step_size:
            dual = adapt.dual_averaging_update(dual, info.acceptance_rate, self.target_acceptance_rate,
                                               self.gamma, self.t0, self.kappa)
            step_size = _clip_step_size(jnp.exp(dual.log_step_size))
        warm = _Warmup(state, step_size, warm.inverse_mass_matrix, dual, warm.mass)
        if self.adapt_mass:
            flat, _ = ravel_pytree(state.position)
            if self.mass_schedule == "exponential":
                mass = adapt.ema_update(warm.mass, flat, self.mass_decay)
                inverse_mass = jnp.where(i >= self.mass_collect_iters, adapt.ema_final(mass),
                                         warm.inverse_mass_matrix)
                warm = warm._replace(mass=mass, inverse_mass_matrix=inverse_mass)
            else:
                mass = lax.cond(is_collecting, lambda m: adapt.welford_update(m, flat), lambda m: m,
                                warm.mass)
                warm = lax.cond(is_window_end, lambda w: self._end_window(key_search, w, log_joint_fn),
                                lambda w: w, warm._replace(mass=mass))
        return warm, info.acceptance_rate

    def _end_window(self, key, warm: _Warmup, log_joint_fn) -> _Warmup:
        inverse_mass = adapt.welford_final(warm.mass).astype(warm.inverse_mass_matrix.dtype)
        mass = jax.tree_util.tree_map(jnp.zeros_like, warm.mass)
        step_size = warm.step_size
        if self.adapt_step_size:
            step_size = adapt.find_reasonable_step_size(key, warm.hmc, log_joint_fn, step_size, inverse_mass)
        return _Warmup(warm.hmc, step_size, inverse_mass, adapt.dual_averaging_init(step_size), mass)

    # ------------------------------------------------------------------ sampling
    def _sample(self, keys, warm, log_joint_fn, n_samples, thinning, n_warmup, every, bar, transform_fn):
        kernel = jax.vmap(self.kernel, in_axes=(0, 0, None, 0, 0, None))

        def transition(states, t):
            keys_t = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
            states, info = kernel(keys_t, states, log_joint_fn, warm.step_size, warm.inverse_mass_matrix,
                                  self.n_leapfrogs)
            progress_callback(n_warmup + t, every, bar)
            return states, info

        def body(states, i):
            states, infos = lax.scan(transition, states, i * thinning + jnp.arange(thinning))
            info = jax.tree_util.tree_map(lambda x: x[-1], infos)
            is_divergent = jnp.any(infos.is_divergent, axis=0)
            kept = jax.vmap(transform_fn)(states.position)
            return states, (kept, jnp.mean(infos.acceptance_rate, axis=0), is_divergent, info.energy,
                            states.log_joint)

        return lax.scan(body, warm.hmc, jnp.arange(n_samples))


def _clip_step_size(step_size):
    # exp of a very negative log step size flushes to 0 in float32, and a zero step never recovers
    return jnp.clip(step_size, 1e-10, 1e10)


def _split_chain_keys(keys):
    triples = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    return triples[:, 0], triples[:, 1], triples[:, 2]


def _initial_positions(key, model, init, n_chains):
    """Per-chain unconstrained starting points `{name: [n_chains, *unconstrained_shape]}`."""
    position = {}
    for index, (name, spec) in enumerate(model.specs.items()):
        if name in init:
            value = jnp.asarray(init[name], spec.dtype)
            value = jnp.broadcast_to(value, (n_chains, *spec.shape))
            position[name] = jax.vmap(spec.transform.inv)(value)
        else:
            shape = (n_chains, *spec.unconstrained_shape)
            position[name] = jax.random.uniform(jax.random.fold_in(key, index), shape, spec.dtype, -2.0, 2.0)
    return position


def _shard_chains(tree, n_chains):
    """Places the leading chain axis across devices when several are present and it divides evenly."""
    devices = jax.devices()
    if len(devices) < 2 or n_chains % len(devices):
        return tree
    mesh = jax.sharding.Mesh(np.asarray(devices), ("chains",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("chains"))
    return jax.device_put(tree, sharding)
