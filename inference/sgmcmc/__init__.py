"""Stochastic gradient MCMC: SGLD, PSGLD, SGHMC and SGNHT behind one API, and a sampling driver.

Each sampler is pure (`init(latent) -> State`, `update(key, state, log_joint_grad) -> (State,
Info)`, `step(key, state, meta_bn, observed) -> (State, Info)`); `sample` runs chains over epochs of
minibatches. See `inference.sgmcmc.base` for the shared contract.
"""

from inference.sgmcmc.base import SGMCMC
from inference.sgmcmc.driver import SGMCMCResult, SGMCMCState, sample
from inference.sgmcmc.gradients import (
    learning_rate_at,
    log_joint_grad_fn,
    minibatch_log_joint_fn,
    normal_like,
    scaled_log_joint,
)
from inference.sgmcmc.psgld import PSGLD, PSGLDInfo, PSGLDState
from inference.sgmcmc.sghmc import SGHMC, SGHMCInfo, SGHMCState
from inference.sgmcmc.sgld import SGLD, SGLDInfo, SGLDState
from inference.sgmcmc.sgnht import SGNHT, SGNHTInfo, SGNHTState

__all__ = [
    "PSGLD",
    "PSGLDInfo",
    "PSGLDState",
    "SGHMC",
    "SGHMCInfo",
    "SGHMCState",
    "SGLD",
    "SGLDInfo",
    "SGLDState",
    "SGMCMC",
    "SGMCMCResult",
    "SGMCMCState",
    "SGNHT",
    "SGNHTInfo",
    "SGNHTState",
    "learning_rate_at",
    "log_joint_grad_fn",
    "minibatch_log_joint_fn",
    "normal_like",
    "sample",
    "scaled_log_joint",
]
