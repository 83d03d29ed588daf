"""Step time: IWAE-50 and VIMCO-10 training steps in the DSL vs the same step hand-written in JAX.

* IWAE-50: `models.vae.iwae.loss_fn` (VAE networks 784-200-200-50, batch 100, 50 samples) vs plain
  JAX log-densities and the log-mean-exp bound.
* VIMCO-10: `models.vae.sbn.loss_fn(method="vimco")` (SBN 200-200-200, batch 24, 10 samples) vs plain
  JAX Bernoulli layers and VIMCO's leave-one-out control variates.

Each repetition runs `--steps` training steps (`value_and_grad` + Adam) in one jitted `lax.scan`,
compiled once; the two contenders' repetitions are interleaved (the CPU is shared and noisy) and the
medians of wall and CPU time per step compared as ratios (target: within 1.05x). XLA's cost analysis
(flops, bytes accessed) of the two compiled programs is recorded as a load-independent check.

Usage: `python -m benchmarks.vi_step [--reps 15 --steps 20]` (writes `benchmarks/results/vi_step.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models.vae import iwae, sbn
from models.vae import model as vae

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


def _make_run(cost_fn, optimizer, k, n_steps):
    """`n_steps` training steps (value_and_grad + Adam) in one jitted `lax.scan`."""
    def step(carry, key):
        params, opt_state, x = carry
        loss, grads = jax.value_and_grad(cost_fn)(params, key, x, k)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, x), loss

    @jax.jit
    def run(params, opt_state, key, x):
        (params, opt_state, _), losses = jax.lax.scan(step, (params, opt_state, x),
                                                      jax.random.split(key, n_steps))
        return params, opt_state, losses
    return run


def _xla_cost(run, params, opt_state, x) -> dict:
    compiled = run.lower(params, opt_state, jax.random.key(0), x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost["flops"]), "bytes_accessed": float(cost["bytes accessed"]),
            "hlo_lines": compiled.as_text().count("\n")}


def _time_pair(runs, params, x, reps, n_steps):
    """Medians over `reps` interleaved repetitions of wall and CPU (process) seconds per step."""
    opt_state = optax.adam(1e-3).init(params)
    wall, cpu = [[] for _ in runs], [[] for _ in runs]
    keys = jax.random.split(jax.random.key(1), reps + 1)
    for r, key in enumerate(keys):
        for i, run in enumerate(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(run(params, opt_state, key, x))
            if r >= 1:  # the first call compiles
                wall[i].append((time.perf_counter() - start) / n_steps)
                cpu[i].append((time.process_time() - start_cpu) / n_steps)
    ratios = [w / h for w, h in zip(wall[0], wall[1], strict=True)]
    return ([float(np.median(t)) for t in wall], [float(np.median(t)) for t in cpu],
            float(np.median(ratios)), [float(q) for q in np.percentile(ratios, [25, 75])])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20, help="training steps per repetition (one lax.scan)")
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
        runs = [_make_run(cost, optimizer, k, args.steps) for cost in (library, handwritten)]
        opt_state = optimizer.init(params)
        cost = {label: _xla_cost(run, params, opt_state, x)
                for label, run in zip(("library", "handwritten"), runs, strict=True)}
        (w_lib, w_hand), (c_lib, c_hand), ratio, ratio_iqr = _time_pair(runs, params, x, args.reps,
                                                                        args.steps)
        results[name] = {"library_ms": 1e3 * w_lib, "handwritten_ms": 1e3 * w_hand, "ratio": w_lib / w_hand,
                         "median_per_rep_ratio": ratio, "per_rep_ratio_iqr": ratio_iqr,
                         "library_cpu_ms": 1e3 * c_lib, "handwritten_cpu_ms": 1e3 * c_hand,
                         "cpu_ratio": c_lib / c_hand, "xla_cost": cost,
                         "reps": args.reps, "steps_per_rep": args.steps, "batch": int(x.shape[0]), "k": k,
                         "load_average": os.getloadavg()[0]}
        print(name, json.dumps(results[name]), flush=True)
    summary = {"device": str(jax.devices()[0]), "results": results}
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
