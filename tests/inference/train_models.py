"""Small models the training-driver tests share: a conjugate normal mean and its SGVB loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import inference
import ppl

PRIOR_STD, NOISE_STD = 2.0, 1.0


@ppl.meta_bayesian_net
def build_model(n, n_particles=None):
    """mu ~ N(0, 2^2); x_i | mu ~ N(mu, 1), i < n."""
    bn = ppl.BayesianNet()
    mu = bn.normal("mu", jnp.zeros(()), std=PRIOR_STD, n_samples=n_particles)
    bn.normal("x", jnp.broadcast_to(mu[..., None], mu.shape + (n,)), std=NOISE_STD, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q(params, n_particles=None):
    """q(mu) = N(mean, exp(log_std)^2); path-derivative log q (zero-variance gradient at q = p)."""
    bn = ppl.BayesianNet()
    bn.normal("mu", params["mean"], logstd=params["log_std"], n_samples=n_particles, use_path_derivative=True)
    return bn


def exact_posterior(x) -> tuple[float, float]:
    """Mean and standard deviation of p(mu | x)."""
    precision = 1 / PRIOR_STD**2 + len(x) / NOISE_STD**2
    return float(np.sum(x) / NOISE_STD**2 / precision), float(precision ** -0.5)


def sgvb_loss(n_total: int, n_particles: int = 8):
    """SGVB loss for minibatches of x, the likelihood rescaled by n_total / batch size."""
    def loss_fn(params, key, x, state):
        model = build_model(x.shape[0], n_particles)
        scale = n_total / x.shape[0]
        model.log_joint = lambda bn: bn["mu"].log_prob + scale * bn["x"].log_prob
        q = build_q(params, n_particles).observe(key)
        lower_bound = inference.elbo(model, {"x": x}, variational=q, axis=0)
        cost = jnp.mean(lower_bound.sgvb())
        return cost, (state, {"elbo": jnp.mean(lower_bound.value)})
    return loss_fn


def init_params() -> dict:
    return {"mean": jnp.zeros(()), "log_std": jnp.zeros(())}


def data(key: jax.Array, n: int = 50) -> jax.Array:
    return 1.5 + NOISE_STD * jax.random.normal(key, (n,))
