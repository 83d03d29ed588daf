"""Latent Dirichlet allocation in the DSL, fitted by stochastic variational inference (SGVB, `inference.fit`).

Generative model (Blei, Ng and Jordan 2003), with each word's topic marginalised:

.. math::
  \\phi_k \\sim \\mathrm{Dir}(\\beta), \\quad \\theta_d \\sim \\mathrm{Dir}(\\alpha), \\quad
  x_{d\\cdot} \\mid \\theta_d, \\phi \\sim \\mathrm{Mult}(\\theta_d^\\top \\phi)

so the count matrix x (`[n_docs, n_vocab]`) has log-likelihood `sum_dw x_dw log (theta_d . phi_w)`.
The variational family is mean-field Dirichlet, `q(phi_k) = Dir(lambda_k)`, `q(theta_d) = Dir(gamma_d)`,
with reparameterised samples (implicit gradients of the Gamma sampler, as numpyro provides;
Figurnov, Mohamed and Mnih 2018). Each step takes a minibatch of B of the N documents and rescales
their terms by N / B (`model.log_joint = fn`), as in stochastic variational inference (Hoffman et
al. 2013).

References:
  Blei, Ng and Jordan, `Latent Dirichlet Allocation
  <https://www.jmlr.org/papers/volume3/blei03a/blei03a.pdf>`_, 2003.
  Hoffman, Blei, Wang and Paisley, `Stochastic Variational Inference
  <https://arxiv.org/abs/1206.7051>`_, 2013.
  Figurnov, Mohamed and Mnih, `Implicit Reparameterization Gradients
  <https://arxiv.org/abs/1805.08498>`_, 2018.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
import ppl

__all__ = [
    "LDAParams",
    "build_lda",
    "build_lda_variational",
    "document_completion_perplexity",
    "fit_lda",
    "fixed_point_document_topics",
    "infer_document_topics",
    "init_lda_params",
    "perplexity",
    "steps_per_epoch",
    "topic_word_means",
]

_LOG_CONCENTRATION_RANGE = (float(np.log(0.01)), float(np.log(1e4)))


class LDAParams(NamedTuple):
    """Variational parameters: the logarithms of the Dirichlet concentrations.

    Attributes:
      topic_raw: `[n_topics, n_vocab]`, q(phi) = Dir(exp(topic_raw)).
      doc_raw: `[n_docs, n_topics]`, q(theta_d) = Dir(exp(doc_raw[d])).
    """

    topic_raw: jax.Array
    doc_raw: jax.Array


def _concentration(raw):
    # log-space parameters: Adam's steps are relative changes, so concentrations from 0.01 to 1000
    # are reached in tens of steps; clipped to [0.01, 1e4], beyond which the Gamma sampler's implicit
    # gradients lose float32 precision (a posterior concentration is at least the prior's)
    return jnp.exp(jnp.clip(raw, _LOG_CONCENTRATION_RANGE[0], _LOG_CONCENTRATION_RANGE[1]))


@ppl.meta_bayesian_net
def build_lda(n_docs: int, n_topics: int, n_vocab: int, alpha: float = 0.1, beta: float = 0.01,
              n_particles: int | None = None):
    """The LDA model with marginalised topic assignments.

    Nodes: `phi` (`[S, n_topics, n_vocab]`, group_ndims 1), `theta` (`[S, n_docs, n_topics]`,
    group_ndims 1) and the observed counts `x` (`[n_docs, n_vocab]`; log_prob `[S]`).

    Args:
      n_docs, n_topics, n_vocab: sizes; alpha, beta: symmetric Dirichlet concentrations of theta and
        phi; n_particles: S (None: no particle axis).
    """
    bn = ppl.BayesianNet()
    phi = bn.dirichlet("phi", jnp.full([n_topics, n_vocab], beta), group_ndims=1, n_samples=n_particles)
    theta = bn.dirichlet("theta", jnp.full([n_docs, n_topics], alpha), group_ndims=1, n_samples=n_particles)
    bn.unnormalized_multinomial("x", logits=jnp.log(theta @ phi), group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_lda_variational(params: LDAParams, doc_index: jax.Array | None = None,
                          n_particles: int | None = None, topics_observed: bool = False):
    """Mean-field Dirichlet q over `phi` and the `theta` of the documents in `doc_index` (`[B]`).

    With `topics_observed`, only `theta` is a node (for inferring proportions under fixed topics).
    """
    bn = ppl.BayesianNet()
    if not topics_observed:
        bn.dirichlet("phi", _concentration(params.topic_raw), group_ndims=1, n_samples=n_particles)
    doc_raw = params.doc_raw if doc_index is None else params.doc_raw[doc_index]
    bn.dirichlet("theta", _concentration(doc_raw), group_ndims=1, n_samples=n_particles)
    return bn


def init_lda_params(key: jax.Array, n_docs: int, n_topics: int, n_vocab: int) -> LDAParams:
    """Concentrations near 1 for q(theta) and near 1 + noise for q(phi) (breaks the topic symmetry)."""
    key_topic, key_doc = jax.random.split(key)
    topic = 1.0 + jax.random.exponential(key_topic, (n_topics, n_vocab))
    doc = jnp.ones([n_docs, n_topics]) + 0.1 * jax.random.uniform(key_doc, (n_docs, n_topics))
    return LDAParams(jnp.log(topic), jnp.log(doc))


def topic_word_means(params: LDAParams) -> jax.Array:
    """E_q[phi], `[n_topics, n_vocab]`, each row a distribution over words."""
    c = _concentration(params.topic_raw)
    return c / jnp.sum(c, -1, keepdims=True)


def _elbo_cost(key, params, counts, doc_index, n_docs, alpha, beta, n_particles, topics=None):
    n_topics, n_vocab = params.topic_raw.shape
    batch = counts.shape[0]
    q = build_lda_variational(params, doc_index, n_particles, topics is not None).observe(key)
    model = build_lda(batch, n_topics, n_vocab, alpha, beta, n_particles)
    scale = n_docs / batch
    # the documents' terms, log p(theta_d, x_d | phi) - log q(theta_d), are rescaled by N / B
    latent = {"theta": (q["theta"].value, scale * q["theta"].log_prob)}
    if topics is None:
        model.log_joint = lambda bn: bn["phi"].log_prob + scale * (bn["theta"].log_prob + bn["x"].log_prob)
        latent["phi"] = (q["phi"].value, q["phi"].log_prob)
        observed = {"x": counts}
    else:
        model.log_joint = lambda bn: scale * (bn["theta"].log_prob + bn["x"].log_prob)
        observed = {"x": counts, "phi": topics}
    lb = inference.elbo(model, observed, latent=latent, axis=0)
    return jnp.mean(lb.sgvb()), lb.value


@functools.lru_cache(maxsize=16)   # one loss per configuration, so later fits reuse fit's compiled program
def _sgvb_loss(n_docs: int, alpha: float, beta: float, n_particles: int, learning_rate: float):
    def loss_fn(params, key, batch, state):
        index, counts = batch
        cost, value = _elbo_cost(key, params, counts, index, n_docs, alpha, beta, n_particles)
        return cost, (state, {"elbo": jnp.mean(value)})

    return optax.adam(learning_rate), loss_fn


def steps_per_epoch(n_docs: int, batch_size: int) -> int:
    """Optimiser steps in one epoch of `fit_lda`: `n_docs // batch_size` (the remainder sits out).

    Args:
      n_docs: documents in the training corpus.
      batch_size: documents per step, in [1, n_docs] (`fit_lda` raises ValueError otherwise; here a
        larger batch gives 0).

    Returns:
      The number of steps, an int (the command line rounds `--steps` up to whole epochs with it).
    """
    return n_docs // batch_size


def fit_lda(key: jax.Array, counts, n_topics: int, n_epochs: int = 500, batch_size: int = 64,
            alpha: float = 0.1, beta: float = 0.01, n_particles: int = 1, learning_rate: float = 0.05,
            params: LDAParams | None = None, progress_bar: bool = False,
            **fit_options) -> inference.TrainResult:
    """SVI for LDA: Adam on the minibatch SGVB cost, through `inference.fit`.

    Each epoch shuffles the documents and cuts them into `n_docs // batch_size` minibatches (the
    `n_docs mod batch_size` left over sit out that epoch); each step rescales its documents' terms
    by N / B.

    Args:
      key: a JAX PRNG key.
      counts: `[n_docs, n_vocab]` word counts (float or int).
      n_topics: K.
      n_epochs: passes over the documents (`steps_per_epoch(n_docs, batch_size)` steps each).
      batch_size: documents per step, in [1, n_docs].
      alpha, beta: the model's Dirichlet concentrations; n_particles: samples of q per step.
      learning_rate: Adam's step size on the log-concentrations.
      params: a starting point (default `init_lda_params`).
      progress_bar: show `inference.fit`'s bar.
      **fit_options: passed to `inference.fit` (`checkpoint_dir`, `checkpoint_every`, `resume`, ...).

    Returns:
      An `inference.TrainResult`: `params` the fitted `LDAParams`; `history["elbo"]` `[n_epochs]`
      the epoch's mean minibatch estimate of the whole corpus's ELBO (nats); `history["n_skipped"]`
      steps skipped for a non-finite gradient (the Gamma sampler's implicit gradient can overflow).

    Raises:
      ValueError: `counts` is not 2-D or `batch_size` is not in [1, n_docs].

    Example:
      >>> result = fit_lda(jax.random.key(0), counts, n_topics=10, n_epochs=100)
      >>> topics = topic_word_means(result.params)        # [10, n_vocab]
    """
    counts = jnp.asarray(counts, jnp.float32)
    if counts.ndim != 2:
        raise ValueError(f"counts must be [n_docs, n_vocab], got shape {counts.shape}")
    n_docs, n_vocab = counts.shape
    if not 1 <= batch_size <= n_docs:
        raise ValueError(f"batch_size must be in [1, {n_docs}] (the number of documents), got {batch_size}")
    key_init, key_fit = jax.random.split(key)
    params = init_lda_params(key_init, n_docs, n_topics, n_vocab) if params is None else params
    optimizer, loss_fn = _sgvb_loss(int(n_docs), float(alpha), float(beta), int(n_particles),
                                    float(learning_rate))
    data = (jnp.arange(n_docs), counts)
    return inference.fit(key_fit, loss_fn, params, optimizer, data, n_epochs=n_epochs,
                         batch_size=int(batch_size), progress_bar=progress_bar, **fit_options)


@functools.lru_cache(maxsize=16)   # one loss per configuration, so later calls reuse fit's compiled program
def _theta_loss(n_docs: int, alpha: float, n_particles: int, learning_rate: float):
    def loss_fn(params, key, counts, topics):                   # the fixed topics ride in fit's state
        cost, value = _elbo_cost(key, params, counts, None, n_docs, alpha, 1.0, n_particles, topics)
        return cost, (topics, {"elbo": jnp.mean(value)})

    return optax.adam(learning_rate), loss_fn


def infer_document_topics(key: jax.Array, topics: jax.Array, counts, alpha: float = 0.1, n_steps: int = 300,
                          n_particles: int = 1, learning_rate: float = 0.1) -> jax.Array:
    """E_q[theta] for documents under fixed topics, by SGVB on q(theta) = Dir (phi observed).

    Adam on the whole set's SGVB cost, `n_steps` full-batch steps through `inference.fit`, from
    concentrations 1.

    Args:
      key: a JAX PRNG key.
      topics: `[n_topics, n_vocab]`, rows on the simplex (e.g. `topic_word_means`).
      counts: `[n_docs, n_vocab]`.
      alpha: the symmetric Dirichlet prior of theta.
      n_steps: Adam steps; n_particles: samples of q per step; learning_rate: Adam's step size.

    Returns:
      `[n_docs, n_topics]` topic proportions.
    """
    topics, counts = jnp.asarray(topics, jnp.float32), jnp.asarray(counts, jnp.float32)
    n_docs = counts.shape[0]
    params = LDAParams(jnp.zeros_like(topics), jnp.zeros([n_docs, topics.shape[0]]))  # concentrations 1
    optimizer, loss_fn = _theta_loss(int(n_docs), float(alpha), int(n_particles), float(learning_rate))
    result = inference.fit(key, loss_fn, params, optimizer, counts, n_epochs=int(n_steps), batch_size=n_docs,
                           shuffle=False, state=topics, progress_bar=False)
    c = _concentration(result.params.doc_raw)
    return c / jnp.sum(c, -1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("n_iterations",))
def _fixed_point(topics, counts, alpha, n_iterations):
    def update(gamma, _):
        weights = jnp.exp(jax.scipy.special.digamma(gamma))                    # exp E_q[log theta], [D, K]
        responsibility = counts / jnp.maximum(weights @ topics, 1e-30)         # x_dw / sum_k w_dk phi_kw
        return alpha + weights * (responsibility @ topics.T), None

    gamma0 = jnp.full([counts.shape[0], topics.shape[0]], alpha + jnp.sum(counts, -1, keepdims=True)
                      / topics.shape[0])
    gamma, _ = jax.lax.scan(update, gamma0, None, length=n_iterations)
    return gamma / jnp.sum(gamma, -1, keepdims=True)


def fixed_point_document_topics(topics, counts, alpha: float = 0.1, n_iterations: int = 100) -> jax.Array:
    """E_q[theta] under fixed topics by the mean-field fixed point for q(theta_d) = Dir(gamma_d).

    With phi fixed, the optimal Dirichlet q(theta_d) of the mean-field family (topic assignments
    summed out in closed form) satisfies

    .. math::
      \\gamma_{dk} = \\alpha + \\sum_w x_{dw}
        \\frac{\\phi_{kw} \\exp \\psi(\\gamma_{dk})}{\\sum_j \\phi_{jw} \\exp \\psi(\\gamma_{dj})}

    (the E-step of Blei et al. 2003, as scikit-learn's `transform` runs it), iterated
    `n_iterations` times from the uniform point. Deterministic and much cheaper than the SGVB of
    `infer_document_topics`.

    Args:
      topics: `[n_topics, n_vocab]`, rows on the simplex.
      counts: `[n_docs, n_vocab]`.
      alpha: the symmetric Dirichlet prior of theta.
      n_iterations: fixed-point sweeps.

    Returns:
      `[n_docs, n_topics]` topic proportions, E_q[theta] = gamma / sum(gamma).

    References:
      Blei, Ng and Jordan, `Latent Dirichlet Allocation
      <https://www.jmlr.org/papers/volume3/blei03a/blei03a.pdf>`_, 2003 (section 5.2).
    """
    return _fixed_point(jnp.asarray(topics, jnp.float32), jnp.asarray(counts, jnp.float32), float(alpha),
                        n_iterations=int(n_iterations))


def perplexity(proportions, topics, counts) -> float:
    """exp(-sum_dw x_dw log(theta_d . phi_w) / sum_dw x_dw): per-word perplexity of `counts`.

    Args:
      proportions: theta, `[n_docs, n_topics]`; topics: phi, `[n_topics, n_vocab]`;
      counts: `[n_docs, n_vocab]`.
    """
    probs = np.asarray(proportions, np.float64) @ np.asarray(topics, np.float64)
    counts = np.asarray(counts, np.float64)
    return float(np.exp(-np.sum(counts * np.log(np.where(counts > 0, probs, 1.0))) / np.sum(counts)))


def document_completion_perplexity(proportions_fn, topics, observed, held_out) -> float:
    """Held-out perplexity by document completion (Wallach et al. 2009).

    The proportions of each test document are inferred from its `observed` half
    (`proportions_fn(observed) -> [n_docs, n_topics]`); the perplexity is that of the `held_out` half.

    References:
      Wallach, Murray, Salakhutdinov and Mimno, `Evaluation Methods for Topic Models
      <https://dl.acm.org/doi/10.1145/1553374.1553515>`_, 2009.
    """
    return perplexity(proportions_fn(observed), topics, held_out)
