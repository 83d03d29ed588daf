# %% [markdown]
# # 6. Topic models: LDA on a real corpus, top words per topic, perplexity
#
# Latent Dirichlet allocation (Blei, Ng and Jordan 2003) written in the DSL: topic-word
# distributions `phi` and document-topic proportions `theta` are Dirichlet nodes, and each
# document's word counts follow the mixture `theta_d . phi` (every word's topic is summed out). We
# fit it by stochastic variational inference with closed-form natural gradients (Hoffman et al.
# 2013, what `python -m models lda` runs by default), print the top words of each topic, and compare the held-out perplexity with scikit-learn's
# `LatentDirichletAllocation` on the same split. A last section fits ZhuSuan's logistic-normal
# topic model by Monte Carlo EM with HMC.
#
# The corpus is the 395 Reuters news stories that install with the `lda` package. To keep the
# notebook fast we keep the 1000 most frequent words of the training documents. `SCALE` sets how
# long to train: the default runs in about a minute on a laptop CPU; `SCALE = 10` fits much better.

# %%
SCALE = 1
N_TOPICS = 10
N_EPOCHS = 50 * SCALE          # SVI passes over the training documents, 4 steps of 64 each
N_EM_EPOCHS = 20 * SCALE       # Monte Carlo EM epochs for the logistic-normal model
N_VOCAB = 1000

import inspect
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import LatentDirichletAllocation

from models.data import corpus
from models.topics import lda as lda_model
from models.topics import lntm, online_lda

data = corpus.load_reuters()
counts = data.dense()
train_index, test_index = corpus.split_documents(counts.shape[0], test_fraction=0.2, seed=0)
keep = np.sort(np.argsort(-counts[train_index].sum(0))[:N_VOCAB])     # the most frequent training words
counts, vocab = counts[:, keep], [data.vocab[w] for w in keep]
train = counts[train_index]
# document completion: each test document's tokens split at random into two halves
observed, held_out = corpus.split_words(counts[test_index], seed=0)
print(f"{len(train_index)} training and {len(test_index)} test documents, {len(vocab)} words, "
      f"{int(train.sum())} training tokens")

# %% [markdown]
# ## The model in the DSL
#
# `build_lda` is a few lines: two `dirichlet` nodes and an `unnormalized_multinomial` for the
# counts, vectorised over all documents (and over `n_particles` samples of the latents).

# %%
print(inspect.getsource(lda_model.build_lda.__wrapped__))

# %% [markdown]
# ## Stochastic variational inference
#
# The variational family is mean-field Dirichlet, `q(phi_k) = Dir(lambda_k)` and
# `q(theta_d) = Dir(gamma_d)`, with each word's topic in q as well. In this conjugate family every
# update is closed-form: each step takes 64 documents, runs their `gamma_d` to a fixed point with
# the topics fixed, and moves `lambda` toward `lambda_hat = beta + (N / 64) x (the batch's expected
# topic-word counts)` by a step `rho_t = (1 + t)^-0.7`, which is a natural-gradient step on the
# ELBO. `inference.fit` drives it (a tqdm bar, one compiled scan per group of epochs).
#
# The same model can be fitted by SGVB in the DSL (`lda_model.fit_lda`: reparameterised Dirichlet
# samples of `phi` and `theta`, Adam on the log-concentrations), but the implicit gradient of the
# Gamma sampler over the 10 x 4258 topic concentrations makes each step ~50x slower
# (`benchmarks/README.md`), so the notebook uses the closed form.

# %%
start = time.perf_counter()
result = online_lda.fit_online_lda(jax.random.key(0), train, N_TOPICS, n_epochs=N_EPOCHS, batch_size=64,
                                   config=online_lda.OnlineLDAConfig(alpha=0.1, beta=0.3))
topics = np.asarray(online_lda.topic_word_means(result.params))
elbo_trace = result.history["elbo_per_token"]
print(f"SVI: {N_EPOCHS} epochs in {time.perf_counter() - start:.0f} s")

for k, row in enumerate(np.argsort(-topics, axis=1)[:, :8]):
    print(f"topic {k}:", " ".join(vocab[w] for w in row))

# %% [markdown]
# ## Held-out perplexity by document completion
#
# For each test document, the topic proportions are inferred from its first half with the topics
# fixed (here by the mean-field fixed point for `q(theta_d)`, the E-step of Blei et al.), and the
# per-word perplexity `exp(-sum log(theta_d . phi_w) / n_words)` is taken on the second half. The
# same function scores scikit-learn's model (its `transform` and normalised `components_`).

# %%
ours = lda_model.document_completion_perplexity(
    lambda docs: lda_model.fixed_point_document_topics(topics, docs, alpha=0.1), topics, observed, held_out)

start = time.perf_counter()
sk = LatentDirichletAllocation(n_components=N_TOPICS, random_state=0).fit(train)
sk_seconds = time.perf_counter() - start
sk_topics = sk.components_ / sk.components_.sum(1, keepdims=True)
theirs = lda_model.document_completion_perplexity(sk.transform, sk_topics, observed, held_out)
print(f"held-out perplexity: ours (SVI, {N_EPOCHS} epochs) {ours:.0f}, "
      f"scikit-learn (batch VB, {sk_seconds:.1f} s) {theirs:.0f}")

# %% [markdown]
# Lower is better. Both are variational Bayes for the same model (scikit-learn's by batch
# coordinate ascent with its default priors 1/K); see `benchmarks/README.md` for runs on the full
# vocabulary.
#
# The ELBO along the run (each epoch's mean of the minibatch estimates), and the topic proportions
# of a few test documents:

# %%
proportions = np.asarray(lda_model.fixed_point_document_topics(topics, counts[test_index], alpha=0.1))
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
ax1.plot(elbo_trace)
ax1.set_xlabel("SVI epoch")
ax1.set_ylabel("ELBO estimate (nats per token)")
ax1.set_ylim(np.percentile(elbo_trace, 5), None)
bottom = np.zeros(6)
for k in range(N_TOPICS):
    ax2.bar(range(6), proportions[:6, k], bottom=bottom, label=vocab[np.argmax(topics[k])])
    bottom += proportions[:6, k]
ax2.set_xlabel("test document")
ax2.set_ylabel("topic proportion")
ax2.legend(fontsize=7, ncol=2, title="topic's top word", title_fontsize=7, loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## ZhuSuan's logistic-normal topic model: Monte Carlo EM with HMC
#
# `models.topics.lntm` replaces the Dirichlet prior of `theta` by a logistic normal,
# `theta_d = softmax(eta_d)` with `eta_d ~ N(mu, diag(sigma^2))`, and treats the topic logits
# `beta` (`phi = softmax(beta)`) as parameters with a Gaussian prior. Each EM step runs a few HMC
# transitions on every document's `eta` in a minibatch (one chain per document, kept across
# epochs), then one Adam step on `beta` at the samples. `inference.fit` drives it too: the M-step's
# cost is the loss, the chains are fit's `state`. Held-out perplexity is computed the same way
# (posterior mean of `theta` by HMC on the observed half).

# %%
start = time.perf_counter()
config = lntm.LNTMConfig(batch_size=64, log_delta=0.0)     # beta ~ N(0, 1): smooths rare words
em = lntm.fit_lntm(jax.random.key(1), train, N_TOPICS, n_epochs=N_EM_EPOCHS, config=config)
state, em_trace = lntm.LNTMState.from_result(em), em.history    # fitted beta, mu, sigma; per-epoch history
lntm_topics = np.asarray(lntm.topic_word_probs(state))
lntm_perplexity = lda_model.document_completion_perplexity(
    lambda docs: lntm.document_topics(jax.random.key(2), state, docs, n_samples=30, n_warmup=30,
                                      config=config)[0], lntm_topics, observed, held_out)
print(f"LNTM: {N_EM_EPOCHS} epochs in {time.perf_counter() - start:.0f} s, "
      f"HMC acceptance {em_trace['acceptance_rate'][-1]:.2f}, held-out perplexity {lntm_perplexity:.0f}")
for k, row in enumerate(np.argsort(-lntm_topics, axis=1)[:, :8]):
    print(f"topic {k}:", " ".join(vocab[w] for w in row))

plt.figure(figsize=(5, 3))
plt.plot(np.exp(-em_trace["log_likelihood_per_word"]))
plt.xlabel("EM epoch")
plt.ylabel("training perplexity")
plt.show()
