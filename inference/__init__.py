"""inference: variational objectives, importance sampling and MCMC for `ppl` models."""

from inference import estimators, flows
from inference.elbo import EvidenceLowerBoundObjective, elbo
from inference.estimators import ReinforceResult, ReinforceState, reinforce_init
from inference.importance import is_loglikelihood, log_mean_exp
from inference.iw_objective import ImportanceWeightedObjective, importance_weighted_objective, iw_objective
from inference.klpq import InclusiveKLObjective, klpq
from inference.objective import VariationalObjective

__all__ = [
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
    "reinforce_init",
]
