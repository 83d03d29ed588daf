"""One SVI update of LDA on the Reuters default minibatch: natural gradient vs SGVB, in milliseconds.

Run: `python -m benchmarks.lda_step` (or `python -m benchmarks.lda_vs_sklearn --step-time`). The
minibatch is the first 64 of the 316 training documents (seed-0 split), K = 10, vocabulary 4258,
the CLI's priors (alpha 0.1, beta 0.3). Each update (gradient and optax step, one jit) is warmed up
once, then called `repeats` times; the median of the calls is reported with the load average, as
the machine may be shared. `svi` is the closed-form natural-gradient step of
`models.topics.online_lda` (local fixed point of at most 100 sweeps from a fresh start, the
costliest case: later steps start from better topics but the local step starts afresh, so this is
also typical); `sgvb` the reparameterised-gradient step of `models.topics.lda`. `svi_in_fit` is the
wall time per step of a whole `inference.fit` run of 50 epochs (200 steps) after a warm-up run has
compiled the program: what the default command pays per step, host progress reports included.
Target: `svi` and `svi_in_fit` < 20 ms.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
from models.data import corpus
from models.topics import lda, online_lda

__all__ = ["step_times"]


def _median_ms(update, state, repeats):
    state = jax.block_until_ready(update(state))                 # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(update(state))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _fit_ms(loss_fn, topics, train, batch_size, n_epochs=50):
    data = tuple(jnp.asarray(a) for a in corpus.to_bag_of_words(train))
    optimizer = optax.sgd(lambda t: (1.0 + t) ** -0.7)
    run = lambda n: inference.fit(jax.random.key(1), loss_fn, topics, optimizer, data, n_epochs=n,  # noqa: E731
                                  batch_size=batch_size, progress_bar=True)
    jax.block_until_ready(run(n_epochs).params)                  # compiles (the same program serves both)
    start = time.perf_counter()
    jax.block_until_ready(run(n_epochs).params)
    return 1e3 * (time.perf_counter() - start) / (n_epochs * (train.shape[0] // batch_size))


def step_times(repeats: int = 20, batch_size: int = 64, n_topics: int = 10) -> dict:
    """`{"svi": ms, "sgvb": ms, "load_average": [1, 5, 15 min], ...}` for one update of each method."""
    counts = corpus.load_reuters().dense()
    train_index, _ = corpus.split_documents(counts.shape[0], 0.2, 0)
    train = counts[train_index]
    n_docs, n_vocab = train.shape
    batch = train[:batch_size]
    key_svi, key_sgvb = jax.random.split(jax.random.key(0))

    config = online_lda.OnlineLDAConfig(beta=0.3)
    loss_fn = online_lda.natural_gradient_loss(n_docs, float(train.sum()), config)
    # padded to the widest training document, as `fit_online_lda` pads them
    words = tuple(jnp.asarray(a[:batch_size]) for a in corpus.to_bag_of_words(train))
    sgd = optax.sgd(0.5)

    @jax.jit
    def svi_update(carry):
        topics, _ = carry
        # the cost (minus the minibatch bound) is kept, as fit records it: it is not dead code here
        cost, grads = jax.value_and_grad(lambda t: loss_fn(t, None, words, None)[0])(topics)
        updates, _ = sgd.update(grads, sgd.init(topics))
        return optax.apply_updates(topics, updates), cost

    index = jnp.arange(batch_size)
    adam = optax.adam(0.05)

    @jax.jit
    def sgvb_update(carry):
        params, opt_state, key = carry
        key, key_q = jax.random.split(key)
        cost = lambda p: lda._elbo_cost(key_q, p, jnp.asarray(batch), index, n_docs, 0.1, 0.3, 1)[0]
        grads = jax.grad(cost)(params)
        updates, opt_state = adam.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    params = lda.init_lda_params(key_sgvb, n_docs, n_topics, n_vocab)
    topics = online_lda.init_topic_concentrations(key_svi, n_topics, n_vocab)
    load = os.getloadavg()
    svi_ms = _median_ms(svi_update, (topics, jnp.zeros([])), repeats)
    sgvb_ms = _median_ms(sgvb_update, (params, adam.init(params), key_sgvb), max(3, repeats // 4))
    return {"svi": svi_ms, "svi_in_fit": _fit_ms(loss_fn, topics, train, batch_size), "sgvb": sgvb_ms,
            "load_average": [load, os.getloadavg()],
            "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "batch_size": batch_size,
            "topics": n_topics, "cpu_count": os.cpu_count()}


if __name__ == "__main__":
    print(json.dumps(step_times(), indent=2))
