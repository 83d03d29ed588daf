"""inference: variational objectives, importance sampling and MCMC for `ppl` models."""

from inference import estimators, flows, hmc, particles, sgmcmc
from inference.ais import AIS, AISResult
from inference.diagnostics import effective_sample_size, print_summary, rhat, summary, to_arviz
from inference.elbo import EvidenceLowerBoundObjective, elbo
from inference.estimators import ReinforceResult, ReinforceState, reinforce_init
from inference.hmc import HMC, HMCSampleInfo
from inference.importance import is_loglikelihood, log_mean_exp
from inference.iw_objective import ImportanceWeightedObjective, importance_weighted_objective, iw_objective
from inference.klpq import InclusiveKLObjective, klpq
from inference.log_joint import LatentSpec, LogJointModel, latent_specs, log_joint_fn, make_log_joint
from inference.objective import VariationalObjective
from inference.sgmcmc import PSGLD, SGHMC, SGLD, SGNHT, SGMCMCResult, scaled_log_joint

__all__ = [
    "PSGLD",
    "SGHMC",
    "SGLD",
    "SGMCMCResult",
    "SGNHT",
    "scaled_log_joint",
    "sgmcmc",
    "AIS",
    "AISResult",
    "HMC",
    "HMCSampleInfo",
    "LatentSpec",
    "LogJointModel",
    "effective_sample_size",
    "hmc",
    "latent_specs",
    "log_joint_fn",
    "make_log_joint",
    "print_summary",
    "rhat",
    "summary",
    "to_arviz",
    "EvidenceLowerBoundObjective",
    "ImportanceWeightedObjective",
    "InclusiveKLObjective",
    "ReinforceResult",
    "ReinforceState",
    "VariationalObjective",
    "elbo",
    "estimators",
    "flows",
    "importance_weighted_objective",
    "is_loglikelihood",
    "iw_objective",
    "klpq",
    "log_mean_exp",
    "particles",
    "reinforce_init",
]
