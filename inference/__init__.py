"""inference: variational objectives, importance sampling and MCMC for `ppl` models."""

from inference import compile_cache, enumeration, estimators, flows, hmc, particles, sgmcmc
from inference.ais import AIS, AISResult
from inference.arviz_export import log_likelihood, to_arviz
from inference.checkpoint import load_checkpoint, load_checkpoint_metadata, save_checkpoint
from inference.diagnostics import effective_sample_size, print_summary, rhat, summary
from inference.elbo import EvidenceLowerBoundObjective, elbo
from inference.enumeration import EnumeratedNode
from inference.estimators import ReinforceResult, ReinforceState, reinforce_init
from inference.hmc import (
    HMC,
    NUTS,
    ChEES,
    HMCSampleInfo,
    InitStrategy,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
)
from inference.importance import is_loglikelihood, log_mean_exp
from inference.iw_objective import ImportanceWeightedObjective, importance_weighted_objective, iw_objective
from inference.klpq import InclusiveKLObjective, klpq
from inference.log_joint import LatentSpec, LogJointModel, latent_specs, log_joint_fn, make_log_joint
from inference.mcmc_result import MCMCResult, MCMCState
from inference.objective import VariationalObjective
from inference.predictive import predictive
from inference.sgmcmc import PSGLD, SGHMC, SGLD, SGNHT, SGMCMCResult, scaled_log_joint
from inference.train import TrainResult, fit
from inference.train_data import shard_data
from inference.train_step import StepInfo, TrainState, batch_indices, make_step

__all__ = [
    "StepInfo",
    "TrainResult",
    "TrainState",
    "batch_indices",
    "fit",
    "load_checkpoint",
    "log_likelihood",
    "load_checkpoint_metadata",
    "make_step",
    "predictive",
    "save_checkpoint",
    "shard_data",
    "PSGLD",
    "SGHMC",
    "SGLD",
    "SGMCMCResult",
    "SGNHT",
    "scaled_log_joint",
    "sgmcmc",
    "AIS",
    "ChEES",
    "MCMCResult",
    "MCMCState",
    "NUTS",
    "compile_cache",
    "AISResult",
    "HMC",
    "HMCSampleInfo",
    "InitStrategy",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
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
    "EnumeratedNode",
    "EvidenceLowerBoundObjective",
    "ImportanceWeightedObjective",
    "InclusiveKLObjective",
    "ReinforceResult",
    "ReinforceState",
    "VariationalObjective",
    "elbo",
    "enumeration",
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
