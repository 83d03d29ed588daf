"""The small discrete model the score-function estimator tests share.

Three Bernoulli latents z with logits `theta`, x | z ~ N(z . w, 1) observed at `X`, and a
mean-field Bernoulli q(z) with logits `phi`: every expectation is an exact sum over the 8 states
in `CONFIGS`.
"""

import itertools

import jax.numpy as jnp

import ppl

D = 3
X = jnp.array(2.5)
CONFIGS = jnp.array(list(itertools.product([0, 1], repeat=D)), dtype=jnp.int32)   # [8, D]
PARAMS = {"theta": jnp.array([0.3, -0.5, 1.0]), "w": jnp.array([1.0, -2.0, 1.5]),
          "phi": jnp.array([-0.2, 0.4, 0.1])}
N_DRAWS = 20000


@ppl.meta_bayesian_net
def model(params, n_particles=None):
    bn = ppl.BayesianNet()
    z = bn.bernoulli("z", logits=params["theta"], group_ndims=1, n_samples=n_particles)
    bn.normal("x", z.astype(jnp.float32) @ params["w"], std=1.0)
    return bn


@ppl.meta_bayesian_net
def q_net(params, n_particles=None):
    bn = ppl.BayesianNet()
    bn.bernoulli("z", logits=params["phi"], group_ndims=1, n_samples=n_particles)
    return bn
