"""What `HMC`, `NUTS` and `ChEES` share: `.sample` (a `ppl` model), `.run` (any log-joint), the compiled
program per static key, argument checks, deprecated names and the `MCMCResult` they return.

Subclasses bind configuration and supply the kernel, the warmup, and how Info is recorded;
`sample_chains` (`inference.hmc.driver`) runs the loop. Each run is one jitted program, looked up
in `inference.compile_cache.PROGRAMS` by everything that determines it (the sampler's static
configuration, the model builder and its non-array arguments, every array's shape and dtype, the
sizes); the step size, observations, data arguments, initial positions and resume states are
traced arguments, so a second call with new data of the same shapes compiles nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from inference.compile_cache import PROGRAMS, rebuild, split_static, static_key
from inference.deprecation import renamed_arguments
from inference.hmc import model as dsl
from inference.hmc import prng
from inference.hmc.checks import (
    MAX_DIVERGENT_FRACTION,
    MIN_ACCEPTANCE,
    abstract_tree,
    check_chain_axis,
    infer_n_chains,
    resolve_strategy,
    resume_key,
    return_node_names,
    strong,
    warn_on_bad_chains,
)
from inference.hmc.driver import (
    ChainWarmup,
    LoopOutput,
    Tuned,
    flatten_states,
    sample_chains,
    unflatten_state,
)
from inference.hmc.initialization import InitStrategy
from inference.hmc.kernel import HMCState
from inference.hmc.kernel import init as hmc_init
from inference.hmc.sharding import check_chain_mesh, shard_chains
from inference.mcmc_result import MCMCResult, MCMCState
from inference.progress import ProgressBar

__all__ = ["MAX_DIVERGENT_FRACTION", "MIN_ACCEPTANCE", "HMCFamily", "HMCSampleInfo", "warn_on_bad_chains"]


class HMCSampleInfo(NamedTuple):
    """What a run reports besides the samples.

    Attributes:
      acceptance_rate: `[n_chains, n_samples]`, the acceptance statistic per kept draw (HMC: the
        Metropolis probability; NUTS: Stan's mean over the trajectory), averaged over a thinning block.
      is_divergent: `[n_chains, n_samples]`, a divergent transition in the thinning block.
      energy: `[n_chains, n_samples]`, the Hamiltonian of each kept state (nats).
      log_joint: `[n_chains, n_samples]`, log p of each kept state on the unconstrained space
        (log p(x, z) plus the log-Jacobian of constrained latents; nats).
      step_size: `[n_chains]`, the step size sampling used (after adaptation).
      inverse_mass_matrix: `[n_chains, d]` (diagonal) or `[n_chains, d, d]` (dense), over the
        raveled unconstrained position of d scalars.
      warmup_acceptance_rate: `[n_chains, n_warmup]`.
      n_leapfrogs: `[n_chains, n_samples]`, leapfrog steps (gradient evaluations) per kept draw,
        summed over its thinning block.
      tree_depth: `[n_chains, n_samples]`, NUTS' tree depth (None for other samplers).
      trajectory_length: `[n_chains]`, ChEES' adapted trajectory length (None for other samplers).
    """

    acceptance_rate: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    log_joint: jax.Array
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    warmup_acceptance_rate: jax.Array
    n_leapfrogs: jax.Array | None = None
    tree_depth: jax.Array | None = None
    trajectory_length: jax.Array | None = None

    @property
    def n_divergences(self) -> jax.Array:
        """Divergent transitions per chain, `[n_chains]`."""
        return jnp.sum(self.is_divergent, axis=-1)


class HMCFamily:
    """Base class of `HMC`, `NUTS` and `ChEES`; see `sample` and `run`."""

    name = "HMC"
    tuned_axes = Tuned(0, 0, {})
    reductions = {"acceptance_rate": "mean", "is_divergent": "any", "n_leapfrogs": "sum"}
    min_chains = 1
    step_size: float

    # ------------------------------------------------------------------ subclass hooks
    def _config_key(self) -> tuple:          # pragma: no cover - abstract
        """Everything of the configuration that changes the program (not the step size)."""
        raise NotImplementedError

    def _kernel(self) -> Callable:            # pragma: no cover - abstract
        raise NotImplementedError

    def _kernel_args(self, tuned: Tuned, index) -> tuple[dict, dict]:
        """Extra kernel arguments for transition `index` and their vmap axes."""
        return {}, {}

    def _warmup(self, log_joint_fn: Callable, n_warmup: int) -> ChainWarmup | None:  # pragma: no cover
        raise NotImplementedError

    def _initial_tuned(self, step_size, n_chains: int, dim: int, dtype) -> Tuned:  # pragma: no cover
        raise NotImplementedError

    def _record_info(self, info, states: HMCState) -> dict:
        return {"acceptance_rate": info.acceptance_rate, "is_divergent": info.is_divergent,
                "energy": info.energy, "log_joint": states.log_joint}

    def _check_sizes(self, n_warmup: int) -> None:
        """Warnings about the run's sizes, raised before tracing."""

    def _sample_info(self, out: LoopOutput, n_chains: int) -> HMCSampleInfo:
        infos, tuned = out.infos, out.tuned
        step = jnp.broadcast_to(tuned.step_size, (n_chains,))
        imm = tuned.inverse_mass_matrix
        if self.tuned_axes.inverse_mass_matrix is None:
            imm = jnp.broadcast_to(imm, (n_chains, *imm.shape))
        return HMCSampleInfo(infos["acceptance_rate"], infos["is_divergent"], infos["energy"],
                             infos["log_joint"], step, imm, out.warmup_acceptance_rate,
                             infos.get("n_leapfrogs"), infos.get("tree_depth"))

    # ------------------------------------------------------------------ the DSL entry point
    def sample(self, key: jax.Array, meta_bn: ppl.MetaBayesianNet, observed: dict, init: dict | None = None,
               n_samples: int = 1000,
               n_warmup: int | None = None, n_chains: int | None = None, thinning: int = 1,
               progress_bar: bool = False, resume: MCMCState | None = None,
               init_strategy: InitStrategy | None = None, return_nodes: str | Iterable[str] | None = None,
               mesh: jax.sharding.Mesh | None = None, **deprecated: Any) -> MCMCResult:
        """Samples the latents of `meta_bn` given `observed`.

        Args:
          key: PRNG key. With `resume`, pass the first run's key to continue its draws exactly (a
            new key continues the chains with fresh randomness).
          meta_bn: a `ppl.MetaBayesianNet`; its stochastic nodes not in `observed` are the latents.
          observed: `{name: value}`.
          init: `{latent: value}` in the latent's own space, each of the latent's shape (all
            chains start there) or with a leading `[n_chains]` axis; latents left out start as
            `init_strategy` says.
          n_samples: draws kept per chain (after thinning).
          n_warmup: adaptation iterations, discarded; default 1000, or 0 with `resume`.
          n_chains: number of chains; None takes it from a per-chain `init` (or `resume`), else 1.
          thinning: keep every `thinning`-th transition (`thin` is a deprecated alias).
          progress_bar: show a tqdm bar on the host (`show_progress` is a deprecated alias).
          resume: an `MCMCState` (`result.state` of an earlier run of this model): continue from
            its positions with its tuned step size and mass matrix, without warmup.
          init_strategy: `inference.init_to_uniform(radius=2)` (default), `init_to_median()`,
            `init_to_sample()` or `init_to_value(values)`; each chain's start is redrawn (up to
            `inference.hmc.initialization.MAX_INIT_TRIES` times) until the log-joint and its
            gradient are finite.
          return_nodes: names of the latent and deterministic nodes to return; None returns every
            latent and every deterministic node, computed inside the compiled run.
          mesh: a `jax.sharding.Mesh` with a "chains" axis: the chains are split across its devices
            (n_chains must be a multiple of the axis' size; other axes replicate them). The draws
            equal a one-device run's up to float round-off. None: with several devices that divide
            n_chains, all of them; else the default device.

        Returns:
          An `MCMCResult`; `samples, info = result` unpacks: `samples[name]` has shape
          `[n_chains, n_samples, *node_shape]`, latents in their own (constrained) space; `info`
          is an `HMCSampleInfo`; `result.state` continues the run.

        Raises:
          ValueError: an `init` value of the wrong shape (names the latent and both shapes) or not
            finite (names the chain and the value); a chain without a valid start after the
            retries (names the chain and the latents); unknown `return_nodes`; bad sizes; `init`
            or `n_warmup > 0` together with `resume`; a `mesh` without a "chains" axis or whose
            size does not divide n_chains (names both sizes); see also
            `inference.log_joint.latent_specs`.

        Example:
          >>> mesh = jax.make_mesh((jax.device_count(),), ("chains",))
          >>> samples, info = NUTS().sample(key, model, {"y": y}, n_chains=8, mesh=mesh)
        """
        extra = renamed_arguments(deprecated, {"thin": "thinning", "show_progress": "progress_bar"},
                                  f"{self.name}.sample")
        thinning, progress_bar = extra.get("thinning", thinning), extra.get("progress_bar", progress_bar)
        strategy, init = resolve_strategy(init_strategy, init)
        n_warmup = self._check_run(n_samples, n_warmup, thinning, resume, init)
        _, key_init, key_run = prng.split_on_host(key, 3, unstack=True)
        arrays, static = dsl.split_model(meta_bn, observed)
        summary = dsl.latent_summary(meta_bn, observed, static)
        deterministic = dsl.deterministic_summary(meta_bn, observed, static)
        names = return_node_names(return_nodes, summary, deterministic)
        n_chains = self._n_chains_for_sample(summary, init, n_chains, resume)
        if mesh is not None:
            check_chain_mesh(mesh, n_chains, self.name)
        dsl.check_init_values(init, summary)
        # arrays in the latent's dtype, so that a new starting value (even a Python number) is traced
        init = {name: jnp.asarray(value, summary[name].dtype) for name, value in init.items()}
        init_arrays, init_static = split_static(init)
        dtype = jnp.result_type(*[s.dtype for s in summary.values()])
        sizes = (n_chains, n_samples, n_warmup, thinning, bool(progress_bar))
        keys = shard_chains(prng.split_on_host(key_run, n_chains), n_chains, mesh)
        init_keys = shard_chains(prng.split_on_host(key_init, n_chains), n_chains, mesh)
        resume = shard_chains(resume, n_chains, mesh) if resume is not None else None
        step_size = jnp.asarray(self.step_size, dtype)

        def attempt(static, arrays):
            states = resume
            if resume is None:
                init_key = ("init", static.key, init_static.key, strategy.key, n_chains)
                build = lambda: self._init_program(static, init_static, strategy, summary)
                states, is_valid, n_tries = _traced_call(init_key, build, (init_keys, arrays, init_arrays))
                dsl.check_initial_states(states, is_valid, n_tries, strategy, meta_bn, observed)
            program_key = ("sample", type(self), self._config_key(), static.key, sizes, names,
                           resume_key(resume))
            build = lambda: self._dsl_program(static, sizes, summary, deterministic, names)
            return self._call(program_key, build, (keys, arrays, states, step_size, resume),
                              n_warmup + n_samples * thinning, progress_bar)

        try:
            return warn_on_bad_chains(attempt(static, arrays), self.name)
        except dsl.CONCRETE_ERRORS:   # the builder needs concrete arrays: its arguments become static
            if not static.n_argument_arrays:
                raise
        arrays_concrete, concrete = dsl.split_model(meta_bn, observed, trace_arguments=False)
        result = attempt(concrete, arrays_concrete)
        dsl.mark_concrete(static)
        return warn_on_bad_chains(result, self.name)

    def _n_chains_for_sample(self, summary, init, n_chains, resume) -> int:
        if resume is not None:
            n = int(jnp.shape(resume.log_joint)[0])
            if n_chains not in (None, n):
                raise ValueError(f"resume holds {n} chains but n_chains={n_chains}")
            return n
        return infer_n_chains(summary, init, n_chains, self.min_chains, self.name)

    def _init_program(self, static, init_static, strategy, summary):
        def program(keys, arrays, init_arrays):
            meta_bn, observed = dsl.rebuild_model(static, arrays)
            model = dsl.log_joint_model(meta_bn, observed, summary)
            init = rebuild(init_static, init_arrays)
            return dsl.initial_states(keys, meta_bn, observed, model, init, strategy)

        return jax.jit(program)

    def _dsl_program(self, static, sizes, summary, deterministic, names):
        def program(keys, arrays, states, step_size, resume):
            meta_bn, observed = dsl.rebuild_model(static, arrays)
            model = dsl.log_joint_model(meta_bn, observed, summary, deterministic)
            if resume is not None:
                states = HMCState(resume.position, resume.log_joint, resume.log_joint_grad)
            transform = lambda position: model.nodes_fn(position, names)
            return self._core(model.log_joint_fn, transform, keys, states, step_size, resume, sizes)

        return jax.jit(program)

    # ------------------------------------------------------------------ any log_joint_fn
    def run(self, key: jax.Array, log_joint_fn: Callable, init_position: Any, n_samples: int,
            n_warmup: int | None = None, thinning: int = 1, progress_bar: bool = False,
            transform_fn: Callable | None = None, resume: MCMCState | None = None,
            mesh: jax.sharding.Mesh | None = None, **deprecated: Any) -> MCMCResult:
        """Samples `log_joint_fn` from per-chain starting points (no DSL needed).

        Args:
          key: PRNG key; chain c uses `split(key, n_chains)[c]`.
          log_joint_fn: `position -> log p`, shape `[]`, on an unconstrained space. Repeated runs
            with the same function (or one with the same code and closure) reuse the program.
          init_position: a pytree whose leaves have a leading `[n_chains]` axis (ignored with
            `resume`; pass None).
          n_samples, n_warmup, thinning, progress_bar, resume: see `sample` (`n_warmup` defaults to
            0 here).
          transform_fn: optional map applied to each kept position (e.g. to a constrained space).
          mesh: a `jax.sharding.Mesh` with a "chains" axis to split the chains across; see `sample`.

        Returns:
          An `MCMCResult`: `samples` is `init_position`'s structure (or `transform_fn`'s output)
          with leaves of shape `[n_chains, n_samples, ...]`; `info` an `HMCSampleInfo`.

        Raises:
          ValueError: leaves without a common leading chain axis, bad sizes, or a `mesh` without a
            "chains" axis or whose size does not divide n_chains (names both sizes).
        """
        extra = renamed_arguments(deprecated, {"thin": "thinning", "show_progress": "progress_bar"},
                                  f"{self.name}.run")
        thinning, progress_bar = extra.get("thinning", thinning), extra.get("progress_bar", progress_bar)
        n_warmup = 0 if n_warmup is None and resume is None else n_warmup
        n_warmup = self._check_run(n_samples, n_warmup, thinning, resume, None)
        positions = resume.position if resume is not None else strong(init_position)
        n_chains = check_chain_axis(positions)
        if n_chains < self.min_chains:
            raise ValueError(f"{self.name} needs at least {self.min_chains} chains, got {n_chains}")
        if mesh is not None:
            check_chain_mesh(mesh, n_chains, self.name)
        keys = shard_chains(prng.split_on_host(key, n_chains), n_chains, mesh)
        run_fn = self.build_run(log_joint_fn, n_samples, n_warmup, thinning, transform_fn, progress_bar,
                                resume=resume)
        result = run_fn(keys, shard_chains(positions, n_chains, mesh) if resume is None else None)
        return warn_on_bad_chains(result, self.name)

    def build_run(self, log_joint_fn: Callable, n_samples: int, n_warmup: int = 0, thinning: int = 1,
                  transform_fn: Callable | None = None, progress_bar: bool = False,
                  resume: MCMCState | None = None) -> Callable:
        """The compiled run as a function `(keys [n_chains], init_position) -> MCMCResult`.

        The program is looked up in (or added to) the shared cache on the first call; see `run`
        for the arguments (with `resume`, pass `init_position=None`).

        Raises:
          ValueError: bad sizes.
        """
        n_warmup = self._check_run(n_samples, n_warmup, thinning, resume, None)
        sizes_base = (n_samples, n_warmup, thinning, bool(progress_bar))

        def run_fn(keys, init_position):
            positions = resume.position if resume is not None else init_position
            n_chains = check_chain_axis(positions)
            dtype = jnp.result_type(*jax.tree_util.tree_leaves(positions))
            sizes = (n_chains, *sizes_base)
            program_key = ("run", type(self), self._config_key(), static_key(log_joint_fn),
                           static_key(transform_fn), sizes, abstract_tree(positions), resume_key(resume))
            build = lambda: self._run_program(log_joint_fn, transform_fn, sizes)
            args = (keys, init_position, jnp.asarray(self.step_size, dtype), resume)
            return self._call(program_key, build, args, n_warmup + n_samples * thinning, progress_bar)

        return run_fn

    def _run_program(self, log_joint_fn, transform_fn, sizes):
        def program(keys, init_position, step_size, resume):
            if resume is None:
                states = jax.vmap(lambda p: hmc_init(p, log_joint_fn))(init_position)
            else:
                states = HMCState(resume.position, resume.log_joint, resume.log_joint_grad)
            return self._core(log_joint_fn, transform_fn, keys, states, step_size, resume, sizes)

        return jax.jit(program)

    # ------------------------------------------------------------------ the shared core
    def _core(self, log_joint_fn, transform_fn, keys, states, step_size, resume, sizes) -> MCMCResult:
        n_chains, n_samples, n_warmup, thinning, progress = sizes
        flat_states, unravel = flatten_states(states)
        flat_log_joint = lambda x: log_joint_fn(unravel(x))
        transform = (lambda x: transform_fn(unravel(x))) if transform_fn else unravel
        if resume is None:
            dim, dtype = flat_states.position.shape[1], flat_states.position.dtype
            tuned, iteration = self._initial_tuned(step_size, n_chains, dim, dtype), 0
        else:
            tuned = Tuned(resume.step_size, resume.inverse_mass_matrix, dict(resume.parameters))
            iteration = resume.iteration
        warmup = self._warmup(flat_log_joint, n_warmup) if n_warmup else None
        every = max(1, (n_warmup + n_samples * thinning) // 100) if progress else 0
        out = sample_chains(self._kernel(), flat_log_joint, keys, flat_states, tuned, n_samples=n_samples,
                            n_warmup=n_warmup, thinning=thinning, warmup=warmup, tuned_axes=self.tuned_axes,
                            kernel_args=self._kernel_args, record_info=self._record_info,
                            reductions=self.reductions, iteration=iteration, transform_fn=transform,
                            progress_every=every)
        state = unflatten_state(out.states, out.tuned, unravel, iteration + n_samples * thinning)
        return MCMCResult(out.positions, self._sample_info(out, n_chains), state)

    def _call(self, program_key, build, args, n_total, progress_bar):
        with ProgressBar(n_total, self.name, is_enabled=bool(progress_bar)) as bar:
            result = _traced_call(program_key, build, args)
            if bar.is_enabled:
                jax.block_until_ready(result)
            return result

    # ------------------------------------------------------------------ checks
    def _check_run(self, n_samples, n_warmup, thinning, resume, init) -> int:
        if n_warmup is None:
            n_warmup = 0 if resume is not None else 1000
        for name, value, low in [("n_samples", n_samples, 1), ("n_warmup", n_warmup, 0),
                                 ("thinning", thinning, 1)]:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{self.name}: {name} must be an int >= {low}, got {value!r}")
        if resume is not None:
            if not isinstance(resume, MCMCState):
                raise TypeError(f"resume must be an MCMCState (result.state), got {type(resume).__name__}")
            if n_warmup:
                raise ValueError(f"{self.name}: resume continues a run without warmup; got "
                                 f"n_warmup={n_warmup}")
            if init:
                raise ValueError(f"{self.name}: init and resume both give starting points; pass one")
        self._check_sizes(int(n_warmup))
        return int(n_warmup)


def _traced_call(program_key, build, args):
    """Runs the cached program; one that failed to trace (a builder needing concrete arrays) is dropped."""
    program = PROGRAMS.get(program_key, build)
    try:
        return program(*args)
    except dsl.CONCRETE_ERRORS:
        PROGRAMS.discard(program_key)
        raise
