"""ppl: a ZhuSuan-style modelling DSL on JAX, with numpyro distributions underneath.

Models are Python functions that build a `BayesianNet` of named stochastic and deterministic nodes;
`meta_bayesian_net` turns such a function into a `MetaBayesianNet` that `observe(key, **observed)`
runs. See `ppl.BayesianNet` for the node helpers, `ppl.distributions` for ZhuSuan's distribution
classes, `ppl.set_out_of_support` for what an observation outside its support does, and
`ppl.substitute` for replacing node values while a model builds, and `ppl.render` for a model's
graph.
"""

from ppl import distributions, graph, keys, nn, nodes, numpyro_extras, provenance, substitution
from ppl.array_like import ArrayLike
from ppl.bayesian_net import BayesianNet, DeterministicTensor, StochasticTensor, node_key
from ppl.checks import OutOfSupportWarning, get_out_of_support, out_of_support, set_out_of_support
from ppl.graph import ModelGraph, render
from ppl.meta import MetaBayesianNet, meta_bayesian_net
from ppl.substitution import NodeSite, substitute

__all__ = [
    "ArrayLike",
    "BayesianNet",
    "DeterministicTensor",
    "MetaBayesianNet",
    "ModelGraph",
    "NodeSite",
    "OutOfSupportWarning",
    "StochasticTensor",
    "distributions",
    "graph",
    "get_out_of_support",
    "keys",
    "meta_bayesian_net",
    "nn",
    "node_key",
    "nodes",
    "numpyro_extras",
    "out_of_support",
    "provenance",
    "render",
    "set_out_of_support",
    "substitute",
    "substitution",
]
