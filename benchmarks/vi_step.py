"""Step time: IWAE-50 and VIMCO-10 training steps in the DSL vs the same step hand-written in JAX.

* IWAE-50: `models.iwae.loss_fn` (VAE networks 784-200-200-50, batch 100, 50 samples) vs plain
  JAX log-densities and the log-mean-exp bound.
* VIMCO-10: `models.sbn.loss_fn(method="vimco")` (SBN 200-200-200, batch 24, 10 samples) vs plain
  JAX Bernoulli layers and VIMCO's leave-one-out control variates.

Each step is `value_and_grad` + Adam, jitted once; the two contenders' repetitions are interleaved
(the CPU is shared and noisy) and the medians compared as a ratio (target: within 1.05x).

Usage: `python -m benchmarks.vi_step [--reps 30]` (writes `benchmarks/results/vi_step.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import iwae, sbn, vae

__all__ = ["main"]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _mlp(layers, h):
    for i, layer in enumerate(layers):
        h = h @ layer["w"] + layer["b"]
        if i < len(layers) - 1:
            h = jax.nn.relu(h)
    return h


def _bernoulli_log_prob(logits, x):
    return x * logits - jax.nn.softplus(logits)


def _log_mean_exp(x, axis):
    return jax.nn.logsumexp(x, axis=axis) - jnp.log(x.shape[axis])


def iwae_handwritten(params, key, x, k):
    """The IWAE-k cost in plain JAX: reparameterised z, log p(x, z) - log q(z | x), log-mean-exp."""
    h = _mlp(params["encoder"], x)
    z_dim = h.shape[-1] // 2
    mean, logstd = h[:, :z_dim], h[:, z_dim:]
    eps = jax.random.normal(key, (k, *mean.shape))
    z = mean + jnp.exp(logstd) * eps
    log_q = jnp.sum(-0.5 * eps**2 - logstd - HALF_LOG_2PI, -1)
    log_prior = jnp.sum(-0.5 * z**2 - HALF_LOG_2PI, -1)
    log_lik = jnp.sum(_bernoulli_log_prob(_mlp(params["decoder"], z), x), -1)
    return -jnp.mean(_log_mean_exp(log_prior + log_lik - log_q, 0))


def vimco_handwritten(params, key, x, k):
    """The VIMCO-k surrogate cost for the SBN in plain JAX."""
    gen, q = params["gen"], params["q"]
    keys = jax.random.split(key, len(q["w"]))
    h, log_q, latents = x, 0.0, []
    for i in range(len(q["w"])):
        logits = h @ q["w"][i] + q["b"][i]          # the first layer once per digit, then per sample
        shape = (k, *logits.shape) if i == 0 else logits.shape
        h = jax.random.bernoulli(keys[i], jax.nn.sigmoid(logits), shape).astype(jnp.float32)
        log_q = log_q + jnp.sum(_bernoulli_log_prob(logits, h), -1)
        latents.append(h)
    log_p = jnp.sum(_bernoulli_log_prob(gen["top"], latents[-1]), -1)
    below = [x] + latents[:-1]
    for i in range(len(gen["w"])):
        log_p = log_p + jnp.sum(_bernoulli_log_prob(latents[i] @ gen["w"][i] + gen["b"][i], below[i]), -1)
    log_w = log_p - log_q                                                   # [k, n]
    lw = jax.lax.stop_gradient(log_w)
    others = (jnp.sum(lw, 0, keepdims=True) - lw) / (k - 1)               # [k, n]
    replaced = jnp.where(jnp.eye(k, dtype=bool)[:, :, None], others[:, None], lw[None])   # [k, k, n]
    signal = _log_mean_exp(lw, 0) - _log_mean_exp(replaced, 1)
    surrogate = jnp.sum(signal * log_q, 0)
    return jnp.mean(-(surrogate - jax.lax.stop_gradient(surrogate)) - _log_mean_exp(log_w, 0))


def _make_step(cost_fn, optimizer, k):
    @jax.jit
    def step(params, opt_state, key, x):
        loss, grads = jax.value_and_grad(cost_fn)(params, key, x, k)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    return step


def _time_pair(steps, params, x, reps):
    optimizer_states = [optax.adam(1e-3).init(params) for _ in steps]
    times = [[] for _ in steps]
    keys = jax.random.split(jax.random.key(1), reps + 2)
    for r, key in enumerate(keys):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            jax.block_until_ready(step(params, optimizer_states[i], key, x))
            if r >= 2:  # the first two calls compile and warm up
                times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--cases", default="IWAE-50,VIMCO-10", help="comma-separated subset to run")
    parser.add_argument("--out", default="benchmarks/results/vi_step.json")  # overwritten
    args = parser.parse_args(argv)
    optimizer = optax.adam(1e-3)
    x_iwae = jax.random.bernoulli(jax.random.key(2), 0.3, (100, 784)).astype(jnp.float32)
    x_sbn = x_iwae[:24]
    results = {}
    cases = {
        "IWAE-50": (vae.init_params(jax.random.key(0), 784, iwae.Z_DIM, iwae.N_HIDDEN), x_iwae,
                    lambda p, key, x, k: iwae.loss_fn(p, key, x, k), iwae_handwritten, 50),
        "VIMCO-10": (sbn.init_params(jax.random.key(0)), x_sbn,
                     lambda p, key, x, k: sbn.loss_fn(p, key, x, k, "vimco"), vimco_handwritten, 10),
    }
    for name, (params, x, library, handwritten, k) in cases.items():
        if name not in args.cases.split(","):
            continue
        # The two costs agree on their value (same model; the samples differ only by key use).
        t_lib, t_hand = _time_pair([_make_step(library, optimizer, k), _make_step(handwritten, optimizer, k)],
                                   params, x, args.reps)
        results[name] = {"library_ms": 1e3 * t_lib, "handwritten_ms": 1e3 * t_hand, "ratio": t_lib / t_hand,
                         "reps": args.reps, "batch": int(x.shape[0]), "k": k}
        print(name, json.dumps(results[name]), flush=True)
    summary = {"device": str(jax.devices()[0]), "results": results}
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
