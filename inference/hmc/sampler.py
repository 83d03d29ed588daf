"""`HMC` and `NUTS`: configuration over the pure kernels, composed with `window_adaptation`.

Both bind configuration only; `.sample` (a `ppl` model) and `.run` (any log-joint) come from
`inference.hmc.base.HMCFamily`, and return an `MCMCResult(samples, info, state)`.

Warmup (`adaptation=`):

=====================  ======================  ==========================================
`adaptation`           step size               inverse mass matrix
=====================  ======================  ==========================================
"window"               dual averaging          Stan's windows (diagonal, or `dense_mass`)
"window_mass"          fixed                   Stan's windows
"exponential"          dual averaging          ZhuSuan's moving variance (diagonal)
"exponential_mass"     fixed                   ZhuSuan's moving variance
"step_size"            dual averaging          identity
"none"                 fixed                   identity
=====================  ======================  ==========================================

ZhuSuan's `adapt_step_size` / `adapt_mass` are accepted as aliases (`mass_schedule` is deprecated).
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from inference.deprecation import caller_stacklevel
from inference.hmc import nuts
from inference.hmc.base import HMCFamily
from inference.hmc.driver import Tuned, per_chain_warmup
from inference.hmc.kernel import build_kernel
from inference.hmc.window import window_adaptation

__all__ = ["ADAPTATIONS", "HMC", "NUTS", "resolve_adaptation"]

_STAN_MIN_WARMUP = 150  # Stan's default initial buffer + first window + final buffer

ADAPTATIONS = {"window": (True, "windowed"), "window_mass": (False, "windowed"),
               "exponential": (True, "exponential"), "exponential_mass": (False, "exponential"),
               "step_size": (True, None), "none": (False, None)}


def resolve_adaptation(adaptation: str | None, adapt_step_size: bool | None, adapt_mass: bool | None,
                       mass_schedule: str | None, default: str,
                       where: str) -> tuple[bool, str | None]:
    """`(adapt_step_size, mass_schedule)` from `adaptation=` or ZhuSuan's flags.

    Args:
      adaptation: a key of `ADAPTATIONS`, or None to use the flags.
      adapt_step_size, adapt_mass: ZhuSuan's flags (None: the default's).
      mass_schedule: deprecated "windowed" | "exponential" (None: "windowed").
      default: the `ADAPTATIONS` key used when nothing is given.
      where: the class name for messages.

    Raises:
      ValueError: an unknown `adaptation` or `mass_schedule`, or flags that contradict `adaptation`.
    """
    if mass_schedule is not None:
        warnings.warn(f"{where}: mass_schedule is deprecated and will be removed in the next release; use "
                      "adaptation='window' or 'exponential'", DeprecationWarning,
                      stacklevel=caller_stacklevel())
        if mass_schedule not in ("windowed", "exponential"):
            raise ValueError(f"mass_schedule must be 'windowed' or 'exponential', got {mass_schedule!r}")
    if adaptation is not None:
        if adaptation not in ADAPTATIONS:
            raise ValueError(f"{where}: adaptation must be one of {sorted(ADAPTATIONS)}, got {adaptation!r}")
        step, schedule = ADAPTATIONS[adaptation]
        if (adapt_step_size is not None and bool(adapt_step_size) != step) or (
                adapt_mass is not None and bool(adapt_mass) != (schedule is not None)) or (
                mass_schedule is not None and mass_schedule != schedule):
            raise ValueError(f"{where}: adaptation={adaptation!r} contradicts adapt_step_size="
                             f"{adapt_step_size!r} / adapt_mass={adapt_mass!r} / mass_schedule="
                             f"{mass_schedule!r}; give only adaptation=")
        return step, schedule
    step, schedule = ADAPTATIONS[default]
    step = step if adapt_step_size is None else bool(adapt_step_size)
    has_mass = (schedule is not None) if adapt_mass is None else bool(adapt_mass)
    return step, ((mass_schedule or "windowed") if has_mass else None)


class _Windowed(HMCFamily):
    """The window-adapted samplers (HMC and NUTS): per-chain step size and mass matrix."""

    def _init_adaptation(self, step_size, adaptation, adapt_step_size, adapt_mass, mass_schedule, dense_mass,
                         target_acceptance_rate, gamma, t0, kappa, mass_collect_iters, mass_decay,
                         divergence_threshold, default):
        is_number = isinstance(step_size, (int, float, np.floating)) and not isinstance(step_size, bool)
        if not (is_number and np.isfinite(step_size) and step_size > 0):
            raise ValueError(f"{self.name}: step_size must be a finite positive number, got {step_size!r}")
        if not 0.0 < target_acceptance_rate < 1.0:
            raise ValueError(f"target_acceptance_rate must be in (0, 1), got {target_acceptance_rate}")
        self.adapt_step_size, self.mass_schedule = resolve_adaptation(
            adaptation, adapt_step_size, adapt_mass, mass_schedule, default, self.name)
        self.adapt_mass = self.mass_schedule is not None
        if self.mass_schedule == "exponential" and dense_mass:
            raise ValueError("dense_mass needs the windowed mass adaptation (adaptation='window')")
        self.step_size = float(step_size)
        self.target_acceptance_rate = float(target_acceptance_rate)
        self.gamma, self.t0, self.kappa = float(gamma), float(t0), float(kappa)
        self.mass_collect_iters, self.mass_decay = int(mass_collect_iters), float(mass_decay)
        self.dense_mass = bool(dense_mass)
        self.divergence_threshold = float(divergence_threshold)

    def _adaptation_key(self) -> tuple:
        return (self.adapt_step_size, self.mass_schedule, self.dense_mass, self.target_acceptance_rate,
                self.gamma, self.t0, self.kappa, self.mass_collect_iters, self.mass_decay,
                self.divergence_threshold)

    def _warmup(self, log_joint_fn, n_warmup):
        window = window_adaptation(self._kernel(), log_joint_fn, n_warmup,
                                   adapt_step_size=self.adapt_step_size,
                                   mass_schedule=self.mass_schedule, dense_mass=self.dense_mass,
                                   target_acceptance_rate=self.target_acceptance_rate, gamma=self.gamma,
                                   t0=self.t0, kappa=self.kappa, mass_collect_iters=self.mass_collect_iters,
                                   mass_decay=self.mass_decay)
        return per_chain_warmup(window)

    def _initial_tuned(self, step_size, n_chains, dim, dtype) -> Tuned:
        step = jnp.broadcast_to(jnp.asarray(step_size, dtype), (n_chains,))
        mass = jnp.eye(dim, dtype=dtype) if self.dense_mass else jnp.ones(dim, dtype)
        return Tuned(step, jnp.broadcast_to(mass, (n_chains, *mass.shape)), {})

    def _check_sizes(self, n_warmup):
        if self.mass_schedule == "windowed" and 0 < n_warmup < _STAN_MIN_WARMUP:
            warnings.warn(
                f"{self.name}: n_warmup={n_warmup} is shorter than the {_STAN_MIN_WARMUP} iterations of "
                f"Stan's windowed adaptation (75 step-size-only + 25 mass window + 50 step-size-only); the "
                f"stages are shrunk to 15% / 75% / 10%, leaving {int(0.1 * n_warmup)} iterations to "
                f"re-tune the step size after the last mass update. Expect a poor step "
                f"size (low or zero acceptance) in high dimensions; use more warmup or adapt_mass=False.",
                UserWarning, stacklevel=caller_stacklevel())


class HMC(_Windowed):
    """Hamiltonian Monte Carlo with step-size and mass adaptation (ZhuSuan's `HMC` arguments).

    Args:
      step_size: the leapfrog step size (position units); the starting point when adapted.
      n_leapfrogs: leapfrog steps per transition (a positive int).
      adapt_step_size: alias: adapt the step size during warmup by dual averaging (None = as
        `adaptation`, whose default adapts nothing, as in ZhuSuan).
      target_acceptance_rate: the acceptance probability dual averaging aims at, in (0, 1).
      gamma, t0, kappa: dual-averaging constants (Hoffman and Gelman 2014, section 3.2).
      adapt_mass: alias: adapt the inverse mass matrix during warmup (Stan's windows).
      mass_schedule: deprecated ("windowed" | "exponential"); use `adaptation`.
      mass_collect_iters: for "exponential", the warmup iteration from which the mass is used.
      mass_decay: for "exponential", the moving-average decay.
      dense_mass: estimate a dense inverse mass matrix (windowed schedule only).
      divergence_threshold: energy error (nats) above which a transition is divergent.
      adaptation: one of `ADAPTATIONS` (module docstring); None: from the aliases, else "none".

    Raises:
      ValueError: an argument out of range, an unknown adaptation, or flags contradicting it.

    Example:
      >>> hmc = HMC(step_size=0.1, n_leapfrogs=10, adaptation="window")
      >>> samples, info = hmc.sample(key, model, {"y": y}, {"w": w0}, n_samples=500, n_warmup=500,
      ...                            n_chains=4)
      >>> samples["w"].shape   # [n_chains, n_samples, *w.shape]

    References:
      Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011;
      Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, 2014;
      Shi et al., `ZhuSuan <https://arxiv.org/abs/1709.05870>`_, 2017.
    """

    name = "HMC"

    def __init__(self, step_size: float = 1.0, n_leapfrogs: int = 10, adapt_step_size: bool | None = None,
                 target_acceptance_rate: float = 0.8, gamma: float = 0.05, t0: float = 100.0,
                 kappa: float = 0.75, adapt_mass: bool | None = None, mass_schedule: str | None = None,
                 mass_collect_iters: int = 10, mass_decay: float = 0.99, dense_mass: bool = False,
                 divergence_threshold: float = 1000.0, adaptation: str | None = None):
        if isinstance(n_leapfrogs, bool) or not isinstance(n_leapfrogs, (int, np.integer)) or n_leapfrogs < 1:
            raise ValueError(f"n_leapfrogs must be a positive int, got {n_leapfrogs!r}")
        self.n_leapfrogs = int(n_leapfrogs)
        self._init_adaptation(step_size, adaptation, adapt_step_size, adapt_mass, mass_schedule, dense_mass,
                              target_acceptance_rate, gamma, t0, kappa, mass_collect_iters, mass_decay,
                              divergence_threshold, default="none")

    def _config_key(self):
        return (self.n_leapfrogs, *self._adaptation_key())

    def _kernel(self):
        kernel, n_leapfrogs = build_kernel(self.divergence_threshold), self.n_leapfrogs

        def hmc_kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix):
            # a rolled loop (a traced trip count): one copy of the gradient in the program, and the
            # same arithmetic whatever surrounds it (a resumed run repeats a long one bit for bit)
            return kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix, jnp.asarray(n_leapfrogs))

        return hmc_kernel

    def _record_info(self, info, states):
        record = super()._record_info(info, states)
        record["n_leapfrogs"] = jnp.full(jnp.shape(states.log_joint), self.n_leapfrogs, jnp.int32)
        return record


class NUTS(_Windowed):
    """The No-U-Turn Sampler (multinomial, generalised U-turn criterion, as in Stan), window-adapted.

    Args:
      step_size: the leapfrog step size; the starting point of the step-size search when adapted.
      max_tree_depth: most trajectory doublings per transition (2^max_tree_depth - 1 leapfrog steps).
      target_acceptance_rate: dual averaging's target for Stan's acceptance statistic.
      adapt_step_size, adapt_mass: aliases of `adaptation` (both True by default: "window").
      dense_mass: a dense inverse mass matrix (windowed schedule only).
      divergence_threshold: energy error (nats) above which a step is divergent.
      adaptation: one of `inference.hmc.sampler.ADAPTATIONS`; None: from the aliases.
      gamma, t0, kappa, mass_collect_iters, mass_decay: see `HMC`.

    Raises:
      ValueError: an argument out of range, an unknown adaptation, or flags contradicting it.

    Example:
      >>> samples, info = NUTS().sample(key, model, {"y": y}, n_samples=1000, n_chains=4)
      >>> info.tree_depth.shape, info.n_leapfrogs.shape   # [n_chains, n_samples]

    References:
      Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, JMLR 2014;
      Betancourt, `A Conceptual Introduction to Hamiltonian Monte Carlo
      <https://arxiv.org/abs/1701.02434>`_, 2017.
    """

    name = "NUTS"
    reductions = {**HMCFamily.reductions, "tree_depth": "last"}

    def __init__(self, step_size: float = 1.0, max_tree_depth: int = 10,
                 target_acceptance_rate: float = 0.8, adapt_step_size: bool | None = True,
                 adapt_mass: bool | None = True, dense_mass: bool = False,
                 divergence_threshold: float = 1000.0, adaptation: str | None = None, gamma: float = 0.05,
                 t0: float = 100.0, kappa: float = 0.75,
                 mass_collect_iters: int = 10, mass_decay: float = 0.99):
        self.max_tree_depth = max_tree_depth
        nuts.build_kernel(max_tree_depth)   # checks max_tree_depth
        if adaptation is not None:   # the defaults of the aliases must not contradict `adaptation`
            adapt_step_size = None if adapt_step_size is True else adapt_step_size
            adapt_mass = None if adapt_mass is True else adapt_mass
        self._init_adaptation(step_size, adaptation, adapt_step_size, adapt_mass, None, dense_mass,
                              target_acceptance_rate, gamma, t0, kappa, mass_collect_iters, mass_decay,
                              divergence_threshold, default="window")

    def _config_key(self):
        return (self.max_tree_depth, *self._adaptation_key())

    def _kernel(self):
        return nuts.build_kernel(self.max_tree_depth, self.divergence_threshold)

    def _record_info(self, info, states):
        record = super()._record_info(info, states)
        record["n_leapfrogs"], record["tree_depth"] = info.n_leapfrogs, info.tree_depth
        return record
