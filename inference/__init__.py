"""inference: variational objectives, importance sampling and MCMC for `ppl` models."""

from inference.elbo import EvidenceLowerBoundObjective, elbo
from inference.importance import is_loglikelihood, log_mean_exp
from inference.objective import VariationalObjective

__all__ = [
    "EvidenceLowerBoundObjective",
    "VariationalObjective",
    "elbo",
    "is_loglikelihood",
    "log_mean_exp",
]
