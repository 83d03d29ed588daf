"""Hamiltonian Monte Carlo: pure kernel, integrator, metric and adaptation, and the `HMC` sampler.

Power users compose `init`, `build_kernel`, the adaptation triples and `lax.scan` themselves;
`HMC(...).sample(...)` runs everything for a `ppl` model in one jitted program.
"""

from inference.hmc import adaptation, integrators, metrics
from inference.hmc.adaptation import find_reasonable_step_size, window_schedule
from inference.hmc.integrators import IntegratorState, leapfrog_trajectory, velocity_verlet
from inference.hmc.kernel import HMCInfo, HMCState, build_kernel, init
from inference.hmc.metrics import Metric, gaussian_euclidean
from inference.hmc.sampler import HMC, HMCSampleInfo

__all__ = [
    "HMC",
    "HMCInfo",
    "HMCSampleInfo",
    "HMCState",
    "IntegratorState",
    "Metric",
    "adaptation",
    "build_kernel",
    "find_reasonable_step_size",
    "gaussian_euclidean",
    "init",
    "integrators",
    "leapfrog_trajectory",
    "metrics",
    "velocity_verlet",
    "window_schedule",
]
