"""Hamiltonian Monte Carlo: pure kernels (HMC, NUTS, ChEES), integrator, metric, warmup, and samplers.

Power users compose `init`, a kernel (`build_kernel`, `nuts.build_kernel`), `window_adaptation` and
`lax.scan` themselves; `HMC`, `NUTS` and `ChEES` `.sample(...)` run everything for a `ppl` model in
one jitted program, compiled once per model builder, static arguments and shapes.
"""

from inference.hmc import adaptation, chees, driver, initialization, integrators, metrics, nuts, prng, window
from inference.hmc.adaptation import find_reasonable_step_size, window_schedule
from inference.hmc.base import HMCSampleInfo
from inference.hmc.chees import ChEES, ChEESInfo, chees_adaptation
from inference.hmc.initialization import (
    MAX_INIT_TRIES,
    InitStrategy,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from inference.hmc.integrators import IntegratorState, leapfrog_trajectory, velocity_verlet
from inference.hmc.kernel import HMCInfo, HMCState, build_kernel, init
from inference.hmc.metrics import Metric, gaussian_euclidean
from inference.hmc.nuts import NUTSInfo
from inference.hmc.sampler import ADAPTATIONS, HMC, NUTS
from inference.hmc.window import WindowAdaptation, WindowAdaptationState, window_adaptation
from inference.mcmc_result import MCMCResult, MCMCState

__all__ = [
    "ADAPTATIONS",
    "ChEES",
    "ChEESInfo",
    "HMC",
    "HMCInfo",
    "HMCSampleInfo",
    "HMCState",
    "InitStrategy",
    "MAX_INIT_TRIES",
    "IntegratorState",
    "MCMCResult",
    "MCMCState",
    "Metric",
    "NUTS",
    "NUTSInfo",
    "WindowAdaptation",
    "WindowAdaptationState",
    "adaptation",
    "build_kernel",
    "chees",
    "chees_adaptation",
    "driver",
    "find_reasonable_step_size",
    "gaussian_euclidean",
    "init",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
    "initialization",
    "integrators",
    "leapfrog_trajectory",
    "metrics",
    "nuts",
    "prng",
    "velocity_verlet",
    "window",
    "window_adaptation",
    "window_schedule",
]
