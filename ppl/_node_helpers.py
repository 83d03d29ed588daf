"""Static types of the node helpers `BayesianNet` gets at import time from `ppl.nodes.NODE_TABLE`.

`BayesianNet.normal`, `.bernoulli`, ... are made by `ppl.bayesian_net._make_helper`, one per entry of
`NODE_TABLE` and of `ZHUSUAN_ALIASES`; a type checker cannot see them, so `BayesianNet` derives from
`NodeHelpers` when type checking (only then) and `tests/test_types.py` checks that the names here
are exactly the generated ones.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
from jax.typing import DTypeLike

__all__ = ["NodeHelper", "NodeHelpers"]


class NodeHelper(Protocol):
    """A node helper: `bn.normal(name, mean, std=1., group_ndims=1)` adds a node, returns its value."""

    def __call__(self, name: str, *args: Any, group_ndims: int = 0, n_samples: int | None = None,
                 is_reparameterized: bool | None = None, use_path_derivative: bool = False,
                 dtype: DTypeLike | None = None, **kwargs: Any) -> jax.Array: ...


class NodeHelpers:
    """The node helpers' names and type (see the module docstring)."""

    normal: NodeHelper
    fold_normal: NodeHelper
    bernoulli: NodeHelper
    categorical: NodeHelper
    onehot_categorical: NodeHelper
    uniform: NodeHelper
    gamma: NodeHelper
    beta: NodeHelper
    poisson: NodeHelper
    binomial: NodeHelper
    multinomial: NodeHelper
    unnormalized_multinomial: NodeHelper
    dirichlet: NodeHelper
    inverse_gamma: NodeHelper
    laplace: NodeHelper
    student_t: NodeHelper
    half_student_t: NodeHelper
    half_normal: NodeHelper
    half_cauchy: NodeHelper
    bin_concrete: NodeHelper
    exp_concrete: NodeHelper
    concrete: NodeHelper
    multivariate_normal_cholesky: NodeHelper
    matrix_variate_normal_cholesky: NodeHelper
    discrete: NodeHelper
    onehot_discrete: NodeHelper
    bin_gumbel_softmax: NodeHelper
    exp_gumbel_softmax: NodeHelper
    gumbel_softmax: NodeHelper
