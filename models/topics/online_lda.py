"""LDA by closed-form natural-gradient SVI (Hoffman, Blei, Wang and Paisley 2013), driven by `inference.fit`.

The same model as `models.topics.lda` (phi_k ~ Dir(beta), theta_d ~ Dir(alpha), counts x_d ~
Mult(theta_d^T phi)) and the same mean-field Dirichlet family for q(phi_k) = Dir(lambda_k) and
q(theta_d) = Dir(gamma_d), with each word's topic assignment kept in q as a categorical. In this
conjugate family every coordinate update is closed-form, so nothing is sampled:

- local step, per document of the minibatch: iterate
  `gamma_dk = alpha + exp E[log theta_dk] sum_w x_dw exp E[log phi_kw] / norm_dw` to its fixed point;
- global step: `lambda_hat = beta + (N / B) sum_d (sufficient statistics of d)` is where the
  corpus's bound would put lambda if every document looked like this batch, and the natural
  gradient of the bound in lambda is `lambda_hat - lambda`, so a step of size rho_t is
  `lambda <- (1 - rho_t) lambda + rho_t lambda_hat`, rho_t = (tau0 + t)^(-kappa).

The SGVB path of `models.topics.lda` spends most of its step in the implicit reparameterisation
gradient of the Gamma sampler over the K x V topic concentrations (benchmarks/README.md, topic
models); this path has no such term. `inference.fit` runs it: the loss function's gradient is
`lambda - lambda_hat` (its value is minus the minibatch bound per token), and `optax.sgd` with the
rho_t schedule applies exactly the update above.

References:
  Hoffman, Blei, Wang and Paisley, `Stochastic Variational Inference
  <https://jmlr.org/papers/v14/hoffman13a.html>`_, 2013.
  Hoffman, Blei and Bach, `Online Learning for Latent Dirichlet Allocation
  <https://papers.nips.cc/paper/3902-online-learning-for-latentdirichlet-allocation>`_, 2010.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
from jax.scipy.special import digamma

import inference
from models.data import corpus

__all__ = [
    "OnlineLDAConfig",
    "dirichlet_expectation",
    "document_step",
    "fit_online_lda",
    "init_topic_concentrations",
    "natural_gradient_loss",
    "topic_word_means",
]


class OnlineLDAConfig(NamedTuple):
    """Settings of natural-gradient SVI for LDA.

    Attributes:
      alpha: symmetric Dirichlet prior of each document's topic proportions theta_d.
      beta: symmetric Dirichlet prior of each topic's word distribution phi_k (scikit-learn's 1/K
        for K = 10; the `lda` command uses 0.3, chosen on a validation split of Reuters).
      tau0, kappa: step sizes rho_t = (tau0 + t)^(-kappa), t = 0, 1, ...; kappa in (0.5, 1] meets the
        Robbins-Monro conditions and tau0 >= 1 keeps every rho_t <= 1 (so lambda stays positive).
      n_local: the most fixed-point sweeps of the local step.
      local_tolerance: the local step stops once the mean absolute change of gamma is below this.
    """

    alpha: float = 0.1
    beta: float = 0.1
    tau0: float = 1.0
    kappa: float = 0.7
    n_local: int = 100
    local_tolerance: float = 1e-3


def dirichlet_expectation(concentration: jax.Array) -> jax.Array:
    """E[log p] under Dir(concentration), row-wise: `digamma(c) - digamma(sum c)`, same shape `[..., n]`.

    Example:
      >>> dirichlet_expectation(jnp.ones([3]))          # each entry psi(1) - psi(3) = -1.5
    """
    return digamma(concentration) - digamma(jnp.sum(concentration, -1, keepdims=True))


def init_topic_concentrations(key: jax.Array, n_topics: int, n_vocab: int) -> jax.Array:
    """lambda `[n_topics, n_vocab]` drawn from Gamma(100, 1/100) (mean 1), as Hoffman et al.'s code does.

    Example:
      >>> topics = init_topic_concentrations(jax.random.key(0), 10, 4258)     # [10, 4258], near 1
    """
    return jax.random.gamma(key, 100.0, (n_topics, n_vocab)) / 100.0


def document_step(word_topics: jax.Array, counts: jax.Array, alpha: float, n_local: int = 100,
                  tolerance: float = 1e-3) -> tuple[jax.Array, jax.Array]:
    """The local step: q(theta_d) = Dir(gamma_d) at its fixed point for each document, topics fixed.

    Works on padded word lists (`models.data.corpus.BagOfWords`): L distinct words per document.

    Args:
      word_topics: exp E_q[log phi] at each document's words, `[n_docs, L, n_topics]`.
      counts: `[n_docs, L]` counts of those words (0 at padding).
      alpha: the symmetric Dirichlet prior of theta.
      n_local: the most sweeps; tolerance: stop once mean |change of gamma| < tolerance.

    Returns:
      `(gamma [n_docs, n_topics], n_sweeps)`; a NaN stops the sweeps (and shows in gamma).

    Example:
      >>> words = corpus.to_bag_of_words(counts)                      # [D, L] ids and counts
      >>> word_topics = jnp.moveaxis(jnp.exp(dirichlet_expectation(topics))[:, words.word_index], 0, -1)
      >>> gamma, n_sweeps = document_step(word_topics, words.counts, alpha=0.1)

    References:
      Blei, Ng and Jordan, `Latent Dirichlet Allocation
      <https://www.jmlr.org/papers/volume3/blei03a/blei03a.pdf>`_, 2003 (the E-step, section 5.2).
    """
    n_topics = word_topics.shape[-1]

    def body(carry):
        gamma, _, i = carry
        exp_elog_theta = jnp.exp(dirichlet_expectation(gamma))                       # [D, K]
        ratio = counts / (jnp.einsum("dlk,dk->dl", word_topics, exp_elog_theta) + 1e-30)
        new = alpha + exp_elog_theta * jnp.einsum("dl,dlk->dk", ratio, word_topics)
        return new, jnp.mean(jnp.abs(new - gamma)), i + 1

    gamma0 = jnp.full([counts.shape[0], n_topics], alpha) + jnp.sum(counts, -1, keepdims=True) / n_topics
    gamma, _, n = jax.lax.while_loop(lambda c: (c[2] < n_local) & (c[1] >= tolerance), body,
                                     (gamma0, jnp.asarray(jnp.inf, gamma0.dtype), 0))
    return gamma, n


def _minibatch_bound(topics, gamma, log_norm, counts, config, scale):
    """Hoffman et al.'s bound for the corpus from one minibatch (nats), q(z) at its optimum.

    `log_norm` `[D, L]` is log sum_k exp(E log theta_dk + E log phi_kw) at each document's words.
    """
    prior_theta = dist.Dirichlet(jnp.full_like(gamma, config.alpha))
    prior_phi = dist.Dirichlet(jnp.full_like(topics, config.beta))
    documents = jnp.sum(counts * log_norm) - jnp.sum(dist.kl_divergence(dist.Dirichlet(gamma), prior_theta))
    return scale * documents - jnp.sum(dist.kl_divergence(dist.Dirichlet(topics), prior_phi))


def natural_gradient_loss(n_docs: int, n_tokens: float, config: OnlineLDAConfig | None = None):
    """The loss function for `inference.fit` whose gradient in lambda is `lambda - lambda_hat`.

    Args:
      n_docs: N, documents in the training corpus (the minibatch is rescaled by N / B).
      n_tokens: tokens in the training corpus (the reported cost is per token).
      config: priors and local-step settings (default `OnlineLDAConfig()`).

    Returns:
      `loss_fn(topics, key, batch, state) -> (cost, (state, metrics))` where `topics` is lambda
      `[n_topics, n_vocab]` and `batch` a `BagOfWords` of `[B, L]` arrays; the cost's value is minus
      the minibatch estimate of the corpus bound per token; metrics: `elbo_per_token`, `local_sweeps`.
      With `optax.sgd(rho_t)` the update is exactly `lambda <- (1 - rho_t) lambda + rho_t lambda_hat`.

    Example:
      >>> loss_fn = natural_gradient_loss(n_docs=316, n_tokens=68510.0)
      >>> result = inference.fit(key, loss_fn, topics, optax.sgd(lambda t: (1.0 + t) ** -0.7),
      ...                        tuple(corpus.to_bag_of_words(counts)), n_epochs=100, batch_size=64)
    """
    config = OnlineLDAConfig() if config is None else config

    def loss_fn(topics, key, batch, state):
        del key                                                                     # deterministic
        word_index, counts = batch
        fixed = jax.lax.stop_gradient(topics)        # the update is closed-form: nothing to differentiate
        exp_elog_topics = jnp.exp(dirichlet_expectation(fixed))                     # [K, V]
        word_topics = jnp.moveaxis(exp_elog_topics[:, word_index], 0, -1)           # [B, L, K]
        gamma, n_sweeps = document_step(word_topics, counts, config.alpha, config.n_local,
                                        config.local_tolerance)
        exp_elog_theta = jnp.exp(dirichlet_expectation(gamma))
        norm = jnp.einsum("dlk,dk->dl", word_topics, exp_elog_theta) + 1e-30
        scale = n_docs / counts.shape[0]
        # sufficient statistics sum_d x_dw q(z_dw = k), scattered from the word lists into [K, V]
        weights = (counts / norm)[..., None] * exp_elog_theta[:, None, :]           # [B, L, K]
        flat = weights.reshape(-1, topics.shape[0]).T                                # [K, B * L]
        stats = jnp.zeros_like(fixed).at[:, word_index.reshape(-1)].add(flat)
        target = config.beta + scale * exp_elog_topics * stats                      # lambda_hat
        direction = fixed - target
        bound = _minibatch_bound(fixed, gamma, jnp.log(norm), counts, config, scale)
        surrogate = jnp.sum(topics * direction)
        cost = -bound / n_tokens + surrogate - jax.lax.stop_gradient(surrogate)
        metrics = {"elbo_per_token": bound / n_tokens, "local_sweeps": n_sweeps.astype(cost.dtype)}
        return cost, (state, metrics)

    return loss_fn


def topic_word_means(topics: jax.Array) -> jax.Array:
    """E_q[phi] = lambda / sum(lambda): from lambda `[n_topics, n_vocab]`, rows on the simplex, same shape."""
    return topics / jnp.sum(topics, -1, keepdims=True)


def fit_online_lda(key: jax.Array, counts, n_topics: int, n_epochs: int = 100, batch_size: int = 64,
                   config: OnlineLDAConfig | None = None,
                   progress_bar: bool = True, **fit_options) -> inference.TrainResult:
    """Natural-gradient SVI for LDA (Hoffman et al. 2013) on a count matrix, by `inference.fit`.

    Args:
      key: a JAX PRNG key (initial topics and the minibatch order).
      counts: `[n_docs, n_vocab]` word counts, non-negative.
      n_topics: K.
      n_epochs: passes over the documents; each has `n_docs // batch_size` steps.
      batch_size: documents per step, in [1, n_docs].
      config: priors, step sizes and local-step settings (default `OnlineLDAConfig()`).
      progress_bar: show `inference.fit`'s tqdm bar.
      **fit_options: passed to `inference.fit` (`checkpoint_dir`, `checkpoint_every`, `resume`, ...).

    Returns:
      `inference.TrainResult`: `params` is lambda `[n_topics, n_vocab]` (q(phi_k) = Dir(lambda_k));
      `history` has per-epoch `cost`, `elbo_per_token` (nats) and `local_sweeps`.

    Raises:
      ValueError: `counts` not 2-D, negative or non-finite, or `batch_size` outside [1, n_docs],
        or `n_topics` < 1, or `config.tau0` < 1, or `config.kappa` outside (0.5, 1].

    Example:
      >>> result = fit_online_lda(jax.random.key(0), counts, n_topics=10, n_epochs=100)
      >>> topics = topic_word_means(result.params)          # [10, n_vocab]
    """
    config = OnlineLDAConfig() if config is None else config
    counts = np.asarray(counts, np.float32)
    if counts.ndim != 2:
        raise ValueError(f"counts must be [n_docs, n_vocab], got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("counts must be finite and non-negative")
    n_docs, n_vocab = counts.shape
    if not 1 <= batch_size <= n_docs:
        raise ValueError(f"batch_size must be in [1, {n_docs}] (the number of documents), got {batch_size}")
    if n_topics < 1:
        raise ValueError(f"n_topics must be >= 1, got {n_topics}")
    if config.tau0 < 1 or not 0.5 < config.kappa <= 1:
        raise ValueError(f"need tau0 >= 1 and kappa in (0.5, 1], got tau0={config.tau0}, "
                         f"kappa={config.kappa}")
    key_init, key_fit = jax.random.split(key)
    topics = init_topic_concentrations(key_init, n_topics, n_vocab)
    schedule = lambda t: (config.tau0 + t) ** (-config.kappa)                     # noqa: E731
    loss_fn = natural_gradient_loss(n_docs, float(counts.sum()), config)
    words = corpus.to_bag_of_words(counts)
    return inference.fit(key_fit, loss_fn, topics, optax.sgd(schedule), tuple(words), n_epochs=n_epochs,
                         batch_size=batch_size, progress_bar=progress_bar, **fit_options)
