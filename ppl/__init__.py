"""ppl: a ZhuSuan-style modelling DSL on JAX, with numpyro distributions underneath.

Models are Python functions that build a `BayesianNet` of named stochastic and deterministic nodes;
`meta_bayesian_net` turns such a function into a `MetaBayesianNet` that `observe(key, **observed)`
runs. See `ppl.BayesianNet` for the node helpers.
"""

from ppl import distributions, nn, nodes
from ppl.bayesian_net import BayesianNet, DeterministicTensor, StochasticTensor, node_key
from ppl.meta import MetaBayesianNet, meta_bayesian_net

__all__ = [
    "BayesianNet",
    "DeterministicTensor",
    "MetaBayesianNet",
    "StochasticTensor",
    "distributions",
    "meta_bayesian_net",
    "nn",
    "node_key",
    "nodes",
]
