"""Small models whose discrete latents the enumeration tests sum out, with brute-force references.

Per data point n (N = 2, D = 2, K = 3 classes):
  model: y ~ Cat(prior), z | y ~ N(m_y, 1) (D dims), x | z ~ N(z, SIGMA^2), x observed at X;
  q:     y ~ Cat(phi_n), z | y ~ N(mu_{y,n}, s_{y,n}^2), or q(z) alone (`with_y=False`).
The references loop over the K values in Python, one `observe` per value with the same key as
the vectorised pass (so the same noise), or use the closed form of the Gaussian expectations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import ppl

K, N, D, P = 3, 2, 2, 4
SIGMA = 0.7
X = jnp.array([[0.5, -1.0], [1.5, 0.3]], jnp.float32)
_rng = np.random.RandomState(0)
PARAMS = {
    "prior": jnp.array([0.2, -0.4, 0.1], jnp.float32),                 # p(y) logits
    "m": jnp.array([[-1.0, 0.5], [0.3, 0.2], [1.2, -0.8]], jnp.float32),  # [K, D] means of p(z | y)
    "phi": jnp.array([[0.3, -0.2, 0.0], [-0.5, 0.4, 0.2]], jnp.float32),  # [N, K] logits of q(y | x)
    "mu": jnp.asarray(_rng.randn(K, N, D), jnp.float32),                  # q(z | x, y) means
    "log_s": jnp.asarray(-0.5 + 0.2 * _rng.randn(K, N, D), jnp.float32),  # q(z | x, y) log-stds
}
_ROWS = jnp.arange(N)


@ppl.meta_bayesian_net
def build_model(params, n_particles=None, with_z=True):
    """y `[P, N]` (no leading axis without particles), z `[P, N, D]` given y, x `[P, N]` log-prob."""
    bn = ppl.BayesianNet()
    y = bn.categorical("y", logits=jnp.broadcast_to(params["prior"], (N, K)), n_samples=n_particles)
    if with_z:
        z = bn.normal("z", params["m"][y], std=1.0, group_ndims=1)
        bn.normal("x", z, std=SIGMA, group_ndims=1)
    else:
        bn.normal("x", params["m"][y], std=SIGMA, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q(params, n_particles=None, with_y=True, with_z=True, is_reparameterized=None):
    """q(y | x) `[N]` and z ~ q(z | x, y) `[P, N, D]`; without y, z follows the y = 0 parameters."""
    bn = ppl.BayesianNet()
    y = bn.categorical("y", logits=params["phi"]) if with_y else jnp.zeros(N, jnp.int32)
    if with_z:
        bn.normal("z", params["mu"][y, _ROWS], logstd=params["log_s"][y, _ROWS], group_ndims=1,
                  n_samples=n_particles, is_reparameterized=is_reparameterized)
    return bn


def full(k, shape=(P, N)):
    return jnp.full(shape, k, jnp.int32)


def loop_variational(params, key, n_particles=P, is_reparameterized=None):
    """Per value k: (log p(x, y=k, z_k), log q(z_k | y=k), log q(y=k)), each `[P, N]`, z_k drawn
    by q observed at y = k with `key` (the noise the vectorised pass uses)."""
    terms = []
    for k in range(K):
        q = build_q(params, n_particles, is_reparameterized=is_reparameterized).observe(key, y=full(k, (N,)))
        bn = build_model(params, n_particles).observe(x=X, y=full(k, (n_particles, N)), z=q["z"].value)
        terms.append((bn.log_joint(), q["z"].log_prob, jnp.broadcast_to(q["y"].log_prob, (n_particles, N))))
    return [jnp.stack(t) for t in zip(*terms, strict=True)]        # each [K, P, N]


def loop_marginal(params, key, n_particles=P):
    """(log sum_y p(x, y, z), log q(z)), `[P, N]`, with z ~ q(z) (no y in q)."""
    q = build_q(params, n_particles, with_y=False).observe(key)
    log_joints = [build_model(params, n_particles).observe(x=X, y=full(k, (n_particles, N)),
                                                           z=q["z"].value).log_joint() for k in range(K)]
    return jax.nn.logsumexp(jnp.stack(log_joints), 0), q["z"].log_prob


def _log_normal(x, mean, var):
    return -0.5 * jnp.log(2 * jnp.pi * var) - 0.5 * (x - mean) ** 2 / var


def exact_elbo(params):
    """The ELBO with y enumerated in q and z's Gaussian expectations in closed form, `[N]`."""
    log_q_y = jax.nn.log_softmax(params["phi"], -1)                       # [N, K]
    log_p_y = jax.nn.log_softmax(params["prior"])                         # [K]
    mu, s2 = params["mu"], jnp.exp(2 * params["log_s"])                   # [K, N, D]
    m = params["m"][:, None, :]                                           # [K, 1, D]
    e_log_pz = jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - 0.5 * ((mu - m) ** 2 + s2), -1)
    e_log_px = jnp.sum(-0.5 * jnp.log(2 * jnp.pi * SIGMA**2) - 0.5 * ((X - mu) ** 2 + s2) / SIGMA**2, -1)
    entropy_z = jnp.sum(0.5 * jnp.log(2 * jnp.pi) + params["log_s"] + 0.5, -1)
    per_value = log_p_y[:, None] - log_q_y.T + e_log_pz + e_log_px + entropy_z   # [K, N]
    return jnp.sum(jnp.exp(log_q_y.T) * per_value, 0)


def exact_discrete(params):
    """Without z: (the ELBO with y enumerated in q, log p(x) = log sum_y p(x, y)), each `[N]`."""
    log_q_y = jax.nn.log_softmax(params["phi"], -1).T                     # [K, N]
    log_p_y = jax.nn.log_softmax(params["prior"])[:, None]
    log_px_y = jnp.sum(_log_normal(X, params["m"][:, None, :], SIGMA**2), -1)   # [K, N]
    log_joint = log_p_y + log_px_y
    return jnp.sum(jnp.exp(log_q_y) * (log_joint - log_q_y), 0), jax.nn.logsumexp(log_joint, 0)
