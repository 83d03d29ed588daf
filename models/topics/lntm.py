"""ZhuSuan's logistic-normal topic model (LNTM), fitted by Monte Carlo EM with HMC, evaluated by AIS.

Generative model (ZhuSuan's `examples/topic_models/lntm_mcem.py`; a correlated-topic-model
relative of LDA with a diagonal covariance, Blei and Lafferty 2007):

.. math::
  \\eta_d \\sim N(\\mu, \\mathrm{diag}(\\sigma^2)), \\quad \\theta_d = \\mathrm{softmax}(\\eta_d), \\quad
  \\beta_k \\sim N(0, \\delta^2 I), \\quad \\phi_k = \\mathrm{softmax}(\\beta_k), \\quad
  \\log p(x_d \\mid \\eta_d, \\beta) = \\sum_w x_{dw} \\log(\\theta_d \\cdot \\phi_{\\cdot w})

(the multinomial coefficient left out, as in ZhuSuan). Documents are padded word lists
(`models.data.corpus.BagOfWords`), so a document costs O(n_topics x its distinct words), not O(n_topics
x n_vocab): ZhuSuan's sparse variant.

Monte Carlo EM: for each minibatch of documents, the E-step runs `n_e_steps` HMC transitions on
each document's eta (one chain per document, `jax.vmap`; chains persist across epochs as in
ZhuSuan; each document adapts its own step size by dual averaging toward
`target_acceptance_rate`); the M-step takes one Adam step on beta for the maximum a posteriori
objective `log p(beta) + N / B sum_batch log p(x_d | eta_d, beta)` at the HMC samples, with the
learning rate `lr * t0 / (t0 + epoch)`. After each epoch mu and log sigma are set to the mean and
log standard deviation of the chains' eta (empirical Bayes, as ZhuSuan does).

`inference.fit` drives it: the M-step's cost is the loss function (its gradient reaches beta only;
the HMC samples are taken at `stop_gradient(beta)`), the optimiser is Adam with the decaying rate,
and the E-step's chains, step-size adaptation and prior (`LNTMChains`) are fit's `state`, so a run
is checkpointed and resumed like any other.

Differences from ZhuSuan's script: per-document rather than one shared step size; the minibatch
likelihood scaled by N / B in the M-step; beta starts at small noise rather than zero; and
`models.topics.cli` defaults to a N(0, 1) prior on beta (`log_delta=0`, chosen on a validation split),
since ZhuSuan's almost flat prior (`LOG_DELTA = 10`, this module's default) over-fits rare words.

Evaluation: `document_topics` (posterior mean of theta by HMC, for perplexity by document
completion) and `ais_log_likelihood` (log p(x_d | beta, mu, sigma) of each test document by
`inference.AIS` from the prior of eta, as ZhuSuan evaluates).

References:
  Blei and Lafferty, `Correlated Topic Models
  <https://proceedings.neurips.cc/paper/2005/hash/9e82757e9a1c12cb710ad680db11f6f1-Abstract.html>`_, 2006.
  Wei and Tanner, `A Monte Carlo Implementation of the EM Algorithm
  <https://doi.org/10.1080/01621459.1990.10474930>`_, 1990.
  Shi et al., `ZhuSuan: A Library for Bayesian Deep Learning <https://arxiv.org/abs/1709.05870>`_, 2017.
  Neal, `Annealed Importance Sampling <https://arxiv.org/abs/physics/9803008>`_, 2001.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
import optax
from jax import lax
from numpyro.distributions import constraints

import inference
import ppl
from inference.hmc import adaptation
from models.data.corpus import BagOfWords, to_bag_of_words

__all__ = [
    "LNTMChains",
    "LNTMConfig",
    "LNTMState",
    "WordCounts",
    "ais_log_likelihood",
    "build_eta_prior",
    "build_lntm",
    "document_topics",
    "fit_lntm",
    "topic_word_probs",
]

LOG_DELTA = 10.0  # ZhuSuan's log standard deviation of beta's prior (an almost flat prior)


class WordCounts(dist.Distribution):
    """Observe-only likelihood of a document's word counts given the probabilities of its words.

    `log_prob(counts) = sum_l counts_l * log_probs_l`: an unnormalised multinomial restricted to the
    words listed (the probabilities need not sum to one over them, unlike `unnormalized_multinomial`).

    Args:
      log_probs: `[*batch, max_words]`, log-probability of each listed word.
    """

    support = constraints.independent(constraints.nonnegative_integer, 1)

    def __init__(self, log_probs):
        self.log_probs = log_probs
        super().__init__(jnp.shape(log_probs)[:-1], jnp.shape(log_probs)[-1:])

    def sample(self, key, sample_shape=()):
        """Not available: the number of words is unknown. Observe the node."""
        raise NotImplementedError("WordCounts is observe-only (the document length is unknown)")

    def log_prob(self, value):
        """See `numpyro.distributions.Distribution.log_prob`."""
        return jnp.sum(value * self.log_probs, -1)


def _eta_node(bn, n_docs, eta_mean, eta_logstd, n_particles):
    n_topics = jnp.shape(eta_mean)[-1]
    return bn.normal("eta", jnp.broadcast_to(eta_mean, (n_docs, n_topics)),
                     logstd=jnp.broadcast_to(eta_logstd, (n_docs, n_topics)), group_ndims=1,
                     n_samples=n_particles)


@ppl.meta_bayesian_net
def build_lntm(eta_mean, eta_logstd, word_index, n_vocab: int, log_delta: float = LOG_DELTA,
               n_particles: int | None = None):
    """The LNTM for documents given as padded word lists.

    Nodes: `eta` (`[S, n_docs, n_topics]`, group_ndims 1), `theta` = softmax(eta) (deterministic),
    `beta` (`[n_topics, n_vocab]`, group_ndims 1) and the observed counts `x` (`[n_docs, max_words]`,
    a `WordCounts` node, event shape `[max_words]`, so its log_prob is `[S, n_docs]`).

    Args:
      eta_mean, eta_logstd: mu and log sigma, `[n_topics]`.
      word_index: `[n_docs, max_words]` int word ids (`BagOfWords.word_index`).
      n_vocab: V; log_delta: log standard deviation of beta's prior; n_particles: S (None: no axis).
    """
    bn = ppl.BayesianNet()
    n_topics = jnp.shape(eta_mean)[-1]
    eta = _eta_node(bn, jnp.shape(word_index)[0], eta_mean, eta_logstd, n_particles)
    theta = bn.deterministic("theta", jax.nn.softmax(eta, -1))
    beta = bn.normal("beta", jnp.zeros([n_topics, n_vocab]), logstd=log_delta, group_ndims=1)
    phi_words = jax.nn.softmax(beta, -1)[:, word_index]                   # [K, n_docs, max_words]
    bn.stochastic("x", WordCounts(jnp.log(jnp.einsum("...dk,kdl->...dl", theta, phi_words))))
    return bn


@ppl.meta_bayesian_net
def build_eta_prior(n_docs: int, eta_mean, eta_logstd):
    """The prior of eta alone (`[n_docs, n_topics]`): AIS's proposal."""
    bn = ppl.BayesianNet()
    _eta_node(bn, n_docs, eta_mean, eta_logstd, None)
    return bn


class LNTMConfig(NamedTuple):
    """Settings of `fit_lntm` and the evaluations (see `fit_lntm`)."""

    batch_size: int = 64
    n_e_steps: int = 5
    n_leapfrogs: int = 20
    step_size: float = 0.05
    target_acceptance_rate: float = 0.6
    learning_rate: float = 1.0
    t0: float = 10.0
    log_delta: float = LOG_DELTA


class LNTMChains(NamedTuple):
    """What the E-step carries between minibatches (`inference.fit`'s `state` in `fit_lntm`).

    Attributes:
      eta: `[n_docs, n_topics]`, each training document's persistent HMC chain.
      dual: `adaptation.DualAveragingState` with fields `[n_docs]`: each chain's step-size adaptation.
      eta_mean, eta_logstd: `[n_topics]`, mu and log sigma of eta's prior (set after each epoch).
      step: `[]` int32, minibatches done.
    """

    eta: jax.Array
    dual: adaptation.DualAveragingState
    eta_mean: jax.Array
    eta_logstd: jax.Array
    step: jax.Array


class LNTMState(NamedTuple):
    """A fitted LNTM, what the evaluations read (`LNTMState.from_result(fit_lntm(...))`).

    Attributes:
      beta: `[n_topics, n_vocab]` topic logits.
      eta_mean, eta_logstd: `[n_topics]`, mu and log sigma of eta's prior.
    """

    beta: jax.Array
    eta_mean: jax.Array
    eta_logstd: jax.Array

    @classmethod
    def from_result(cls, result: inference.TrainResult) -> LNTMState:
        """The fitted model of `fit_lntm`'s `TrainResult` (params beta, state `LNTMChains`)."""
        return cls(result.params, result.state.eta_mean, result.state.eta_logstd)


def topic_word_probs(state: LNTMState) -> jax.Array:
    """phi = softmax(beta), `[n_topics, n_vocab]`."""
    return jax.nn.softmax(state.beta, -1)


def _doc_log_joint_fn(beta, eta_mean, eta_logstd, word_index, counts, log_delta):
    """position {"eta": [1, K]} -> log p(eta_d) + log p(x_d | eta_d, beta) for one document."""
    model = build_lntm(eta_mean, eta_logstd, word_index[None], beta.shape[1], log_delta)
    model.log_joint = lambda bn: bn["eta"].log_prob + bn["x"].log_prob   # beta is a parameter here
    return inference.log_joint_fn(model, {"x": counts[None], "beta": beta})


def _doc_chain(key, eta, dual, word_index, counts, beta, eta_mean, eta_logstd, *, n_iterations, n_adapt,
               config):
    """HMC on one document's eta: `n_iterations` transitions, step size adapted for the first `n_adapt`.

    Returns `(eta [K], dual, etas [n_iterations, K], acceptance [n_iterations])`.
    """
    log_joint = _doc_log_joint_fn(beta, eta_mean, eta_logstd, word_index, counts, config.log_delta)
    kernel = inference.hmc.build_kernel()
    inverse_mass = jnp.ones(eta.shape)
    n_leapfrogs = jnp.asarray(config.n_leapfrogs)  # traced: a fori_loop, which compiles faster than unrolled

    def body(carry, xs):
        state, dual = carry
        key_t, t = xs
        is_adapting = t < n_adapt
        step_size = jnp.exp(jnp.where(is_adapting, dual.log_step_size, dual.log_step_size_avg))
        state, info = kernel(key_t, state, log_joint, step_size, inverse_mass, n_leapfrogs)
        updated = adaptation.dual_averaging_update(dual, info.acceptance_rate, config.target_acceptance_rate)
        dual = jax.tree_util.tree_map(lambda a, b: jnp.where(is_adapting, a, b), updated, dual)
        return (state, dual), (state.position["eta"][0], info.acceptance_rate)

    state = inference.hmc.init({"eta": eta[None]}, log_joint)
    xs = (jax.random.split(key, n_iterations), jnp.arange(n_iterations))
    (state, dual), (etas, acceptance) = lax.scan(body, (state, dual), xs)
    return state.position["eta"][0], dual, etas, acceptance


def _chains(key, eta, dual, bow, beta, eta_mean, eta_logstd, n_iterations, n_adapt, config):
    chain = functools.partial(_doc_chain, beta=beta, eta_mean=eta_mean, eta_logstd=eta_logstd,
                              n_iterations=n_iterations, n_adapt=n_adapt, config=config)
    keys = jax.random.split(key, eta.shape[0])
    return jax.vmap(chain)(keys, eta, dual, bow.word_index, bow.counts)


def _m_step_cost(beta, eta, bow, eta_mean, eta_logstd, scale, log_delta):
    model = build_lntm(eta_mean, eta_logstd, bow.word_index, beta.shape[1], log_delta)
    bn = model.observe(eta=eta, beta=beta, x=bow.counts)
    log_likelihood = jnp.sum(bn["x"].log_prob)
    return -(jnp.sum(bn["beta"].log_prob) + scale * log_likelihood), log_likelihood


def _e_step(key, chains: LNTMChains, batch, beta, n_batches: int, config: LNTMConfig):
    """HMC on the batch's chains at fixed beta; after an epoch's last batch, mu and sigma from all chains."""
    index, word_index, counts = batch
    dual = jax.tree_util.tree_map(lambda a: a[index], chains.dual)
    eta, dual, _, acceptance = _chains(key, chains.eta[index], dual, BagOfWords(word_index, counts), beta,
                                       chains.eta_mean, chains.eta_logstd, config.n_e_steps, config.n_e_steps,
                                       config)
    all_eta, step = chains.eta.at[index].set(eta), chains.step + 1
    is_epoch_end = step % n_batches == 0
    new = LNTMChains(all_eta, jax.tree_util.tree_map(lambda a, b: a.at[index].set(b), chains.dual, dual),
                     jnp.where(is_epoch_end, jnp.mean(all_eta, 0), chains.eta_mean),
                     jnp.where(is_epoch_end, jnp.log(jnp.std(all_eta, 0) + 1e-6), chains.eta_logstd), step)
    return eta, new, jnp.mean(acceptance), jnp.exp(jnp.mean(dual.log_step_size))


@functools.lru_cache(maxsize=16)   # one loss per configuration, so later fits reuse fit's compiled program
def _em_loss(n_docs: int, n_batches: int, config: LNTMConfig):
    """`(optimizer, loss_fn)` of Monte Carlo EM for `inference.fit`: E-step in the state, M-step the cost."""
    def loss_fn(beta, key, batch, chains):
        fixed = lax.stop_gradient(beta)
        eta, chains_new, acceptance, step_size = _e_step(key, chains, batch, fixed, n_batches, config)
        docs = BagOfWords(batch[1], batch[2])
        cost, log_likelihood = _m_step_cost(beta, eta, docs, chains.eta_mean, chains.eta_logstd,
                                            n_docs / config.batch_size, config.log_delta)
        return cost, (chains_new, {"log_likelihood_per_word": log_likelihood / jnp.sum(docs.counts),
                                   "acceptance_rate": acceptance, "step_size": step_size})

    def learning_rate(count):                          # lr * t0 / (t0 + epoch), epoch = steps // n_batches
        return -config.learning_rate * config.t0 / (config.t0 + (count // n_batches).astype(jnp.float32))

    return optax.chain(optax.scale_by_adam(), optax.scale_by_schedule(learning_rate)), loss_fn


def _init_chains(n_docs, n_topics, config) -> LNTMChains:
    dual_one = adaptation.dual_averaging_init(config.step_size)
    dual = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_docs,)), dual_one)
    return LNTMChains(jnp.zeros([n_docs, n_topics]), dual, jnp.zeros([n_topics]), jnp.zeros([n_topics]),
                      jnp.zeros((), jnp.int32))


def _as_bag_of_words(documents) -> BagOfWords:
    bow = documents if isinstance(documents, BagOfWords) else to_bag_of_words(documents)
    return BagOfWords(jnp.asarray(bow.word_index, jnp.int32), jnp.asarray(bow.counts, jnp.float32))


def fit_lntm(key: jax.Array, documents, n_topics: int, n_vocab: int | None = None, n_epochs: int = 50,
             config: LNTMConfig | None = None, *, progress_bar: bool = False,
             **fit_options) -> inference.TrainResult:
    """Monte Carlo EM for the LNTM (module docstring) through `inference.fit`: HMC E-steps, Adam M-steps.

    Args:
      key: a JAX PRNG key.
      documents: a `models.data.corpus.BagOfWords` (`[n_docs, max_words]`) or a count matrix
        `[n_docs, n_vocab]` (dense or SciPy sparse).
      n_topics: K.
      n_vocab: V (default: the count matrix's width; required with a `BagOfWords`).
      n_epochs: passes over the documents, each a fresh permutation cut into
        `n_docs // config.batch_size` minibatches (the remainder sits out that epoch).
      config: `LNTMConfig` (default `LNTMConfig()`): `batch_size`; `n_e_steps` HMC transitions
        per document per E-step, each of `n_leapfrogs` leapfrog steps from `step_size` (position
        units of eta) adapted per document toward `target_acceptance_rate`; Adam's `learning_rate` decayed as
        `t0 / (t0 + epoch)`; `log_delta`, the log standard deviation of beta's prior.
      progress_bar: show `inference.fit`'s bar.
      **fit_options: passed to `inference.fit` (`checkpoint_dir`, `checkpoint_every`, `resume`, ...).
        Training starts from beta ~ N(0, 0.01^2), eta = 0, mu = 0, sigma = 1; to go on, resume.

    Returns:
      An `inference.TrainResult`: `params` beta `[n_topics, n_vocab]`, `state` the `LNTMChains`,
      `history` per epoch: `log_likelihood_per_word` (mean over the minibatches of
      log p(x_d | eta_d, beta) at the HMC samples per token, nats; exp(-it) is ZhuSuan's printed
      training perplexity), `acceptance_rate` (HMC), `step_size` (geometric mean over documents), `cost`.
      `LNTMState.from_result` gives the fitted model the evaluations take.

    Raises:
      ValueError: n_vocab missing with a `BagOfWords` or smaller than its word ids, or `batch_size` not
        in [1, n_docs].

    Example:
      >>> result = fit_lntm(key, counts, n_topics=10, n_epochs=50)
      >>> topic_word_probs(LNTMState.from_result(result)).shape     # [10, n_vocab]
    """
    if not isinstance(documents, BagOfWords):
        n_vocab = documents.shape[1] if n_vocab is None else n_vocab
    elif n_vocab is None:
        raise ValueError("n_vocab is required when documents is a BagOfWords")
    config = LNTMConfig() if config is None else config
    bow = _as_bag_of_words(documents)
    n_docs = bow.word_index.shape[0]
    largest = int(jnp.max(bow.word_index))
    if largest >= n_vocab:
        raise ValueError(f"documents use word ids up to {largest}, but n_vocab={n_vocab}")
    if not 1 <= config.batch_size <= n_docs:
        raise ValueError(f"config.batch_size must be in [1, {n_docs}] (the number of documents), "
                         f"got {config.batch_size}")
    key_init, key_fit = jax.random.split(key)
    beta = 0.01 * jax.random.normal(key_init, (n_topics, int(n_vocab)))  # small noise breaks the symmetry
    optimizer, loss_fn = _em_loss(int(n_docs), n_docs // config.batch_size, config)
    data = (jnp.arange(n_docs), bow.word_index, bow.counts)
    return inference.fit(key_fit, loss_fn, beta, optimizer, data, n_epochs=n_epochs,
                         batch_size=config.batch_size, state=_init_chains(n_docs, n_topics, config),
                         progress_bar=progress_bar, **fit_options)


@functools.partial(jax.jit, static_argnames=("n_samples", "n_warmup", "config"))
def _document_topics(key, state, bow, *, n_samples, n_warmup, config):
    n_docs, n_topics = bow.word_index.shape[0], state.beta.shape[0]
    dual = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_docs,)),
                                  adaptation.dual_averaging_init(config.step_size))
    eta = jnp.broadcast_to(state.eta_mean, (n_docs, n_topics))
    _, _, etas, acceptance = _chains(key, eta, dual, bow, state.beta, state.eta_mean, state.eta_logstd,
                                     n_warmup + n_samples, n_warmup, config)
    return jnp.mean(jax.nn.softmax(etas[:, n_warmup:], -1), 1), jnp.mean(acceptance[:, n_warmup:])


def document_topics(key: jax.Array, state: LNTMState, documents, n_samples: int = 100, n_warmup: int = 100,
                    config: LNTMConfig | None = None) -> tuple[jax.Array, jax.Array]:
    """Posterior mean of theta for each document under the fitted topics, by HMC on its eta.

    `theta_hat_d . phi` is then the posterior predictive distribution of document d's next word, the
    quantity document-completion perplexity scores.

    Args:
      key: a JAX PRNG key.
      state: a fitted `LNTMState` (beta, mu, sigma are used).
      documents: `BagOfWords` or counts `[n_docs, n_vocab]`.
      n_samples: HMC transitions averaged, after `n_warmup` that adapt the step size (chains start
        at mu); config: `n_leapfrogs`, `step_size`, `target_acceptance_rate`, `log_delta`.

    Returns:
      `(theta [n_docs, n_topics], mean acceptance rate [])`.
    """
    return _document_topics(key, state, _as_bag_of_words(documents), n_samples=n_samples, n_warmup=n_warmup,
                            config=LNTMConfig() if config is None else config)


@functools.partial(jax.jit, static_argnames=("n_chains", "n_temperatures", "step_size", "n_leapfrogs"))
def _ais(key, state, bow, *, n_chains, n_temperatures, step_size, n_leapfrogs):
    hmc = inference.HMC(step_size=step_size, n_leapfrogs=n_leapfrogs)

    def one_document(key, word_index, counts):
        model = build_lntm(state.eta_mean, state.eta_logstd, word_index[None], state.beta.shape[1])
        model.log_joint = lambda bn: bn["eta"].log_prob + bn["x"].log_prob   # p(x_d | beta) integrates eta
        prior = build_eta_prior(1, state.eta_mean, state.eta_logstd)
        ais = inference.AIS(model, prior, hmc, {"x": counts[None], "beta": state.beta}, n_temperatures)
        result = ais.run(key, n_chains)
        return result.log_marginal, result.stderr, jnp.mean(result.acceptance_rate)

    keys = jax.random.split(key, bow.word_index.shape[0])
    return jax.vmap(one_document)(keys, bow.word_index, bow.counts)


def ais_log_likelihood(key: jax.Array, state: LNTMState, documents, n_chains: int = 16,
                       n_temperatures: int = 500, step_size: float = 0.1, n_leapfrogs: int = 10
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """log p(x_d | beta, mu, sigma) of each document by annealed importance sampling, as ZhuSuan evaluates.

    `inference.AIS` anneals from the prior of eta (`build_eta_prior`) to the posterior with HMC
    transitions (fixed `step_size`, `n_leapfrogs`), `n_chains` chains per document, documents by
    `jax.vmap`. The estimate of p(x_d) is unbiased, so its log is biased low by about stderr^2 / 2.
    The multinomial coefficient is left out (as in the model).

    Args:
      key: a JAX PRNG key.
      state: a fitted `LNTMState`.
      documents: `BagOfWords` or counts `[n_docs, n_vocab]` (whole test documents).
      n_chains, n_temperatures, step_size, n_leapfrogs: see `inference.AIS`.

    Returns:
      `(log_marginal [n_docs], stderr [n_docs], acceptance [n_docs])` in nats; the per-word
      log-likelihood of the set is `sum(log_marginal) / total tokens`.

    References:
      Neal, `Annealed Importance Sampling <https://arxiv.org/abs/physics/9803008>`_, 2001;
      Wallach, Murray, Salakhutdinov and Mimno, `Evaluation Methods for Topic Models
      <https://dl.acm.org/doi/10.1145/1553374.1553515>`_, 2009.
    """
    return _ais(key, state, _as_bag_of_words(documents), n_chains=n_chains, n_temperatures=n_temperatures,
                step_size=float(step_size), n_leapfrogs=int(n_leapfrogs))
