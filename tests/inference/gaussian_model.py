"""The conjugate Gaussian model the ELBO and importance-sampling tests share.

z ~ N(0, I) and x | z ~ N(z, SIGMA^2 I) for n = 2 data points of d = 2 dimensions, observed at
`X`: the posterior, the ELBO of any Gaussian q and the evidence all have closed forms.
"""

import jax.numpy as jnp
import numpy as np

import ppl

SIGMA = 0.5
X = np.array([[0.8, -1.5], [2.0, 0.3]], np.float32)            # [n=2, d=2]


@ppl.meta_bayesian_net
def build_model():
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros(X.shape), std=1., group_ndims=1)
    bn.normal("x", z, std=SIGMA, group_ndims=1)
    return bn
