"""HMC on a COVTYPE-sized logistic regression (581,012 x 55, synthetic values): ms per leapfrog step.

NumPyro's paper reports 27.8 ms per leapfrog step on CPU for HMC on COVTYPE (Phan, Pradhan and
Jankowiak, `Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro
<https://arxiv.org/abs/1912.11554>`_, 2019, Table 2). Here the same shape with synthetic features,
one chain, fixed step size, 10 leapfrog steps per transition, every run compiled before timing:

- `ppl`: `inference.HMC(...).build_run` on the DSL model `models.blr` (which stores the features
  feature-major, `[d, n]`);
- `blackjax`, `numpyro_kernel`: BlackJAX's `hmc` and NumPyro's bare `hmc` kernel in a jitted
  `lax.scan`, on the hand-written log-density with the row-major `x @ w` a user would write, and
  again (`..._feature_major`) with the same feature-major layout as `ppl`;
- `grad_floor_row`, `grad_floor_feature_major`: `n_leapfrogs * transitions` evaluations of
  `jax.value_and_grad` of the hand-written log-density alone in one `lax.scan` (the position
  nudged by each gradient so nothing is hoisted): the cost of the gradients a trajectory needs,
  with no sampler around them.

Repetitions of all contenders are interleaved in one process and medians reported.

Usage: `python -m benchmarks.hmc_covtype [--reps 5] [--transitions 5]`
(writes `benchmarks/results/hmc_covtype.json`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import hmc_blr

__all__ = ["main", "synthetic_covtype"]

N_ROWS, N_COLUMNS = 581_012, 55
NUMPYRO_PUBLISHED_MS = 27.8
STEP_SIZE = 1e-4   # a large data set concentrates the posterior


def synthetic_covtype(key):
    """Standard-normal features `[581012, 55]` (last column ones) and Bernoulli labels `[581012]`, float32."""
    key_x, key_w, key_y = jax.random.split(key, 3)
    x = jax.random.normal(key_x, (N_ROWS, N_COLUMNS - 1))
    x = jnp.concatenate([x, jnp.ones((N_ROWS, 1))], axis=1)
    w = jax.random.normal(key_w, (N_COLUMNS,)) * 0.3
    y = jax.random.bernoulli(key_y, jax.nn.sigmoid(x @ w)).astype(jnp.float32)
    return x, y


def gradient_floor(x, y, n_gradients, feature_major):
    """`n_gradients` value-and-gradient evaluations of the hand-written log-density in one scan."""
    value_and_grad = jax.value_and_grad(hmc_blr.plain_log_density(x, y, feature_major))

    @jax.jit
    def run(w):
        def body(w, _):
            value, grad = value_and_grad(w)
            return w + STEP_SIZE * 1e-3 * grad, value
        return lax.scan(body, w, None, length=n_gradients)

    w = jnp.zeros(x.shape[1])
    compiled = run.lower(w).compile()
    return lambda: jax.block_until_ready(compiled(w))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--transitions", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/hmc_covtype.json")
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    hmc_blr.STEP_SIZE = STEP_SIZE
    x, y = synthetic_covtype(jax.random.key(0))
    n_steps = args.transitions * hmc_blr.N_LEAPFROGS
    runs = {"ppl": hmc_blr.ours(x, y, 1, args.transitions),
            "blackjax": hmc_blr.blackjax_hmc(x, y, 1, args.transitions),
            "blackjax_feature_major": hmc_blr.blackjax_hmc(x, y, 1, args.transitions, feature_major=True),
            "numpyro_kernel": hmc_blr.numpyro_hmc_kernel(x, y, 1, args.transitions),
            "numpyro_kernel_feature_major": hmc_blr.numpyro_hmc_kernel(x, y, 1, args.transitions,
                                                                       feature_major=True),
            "grad_floor_row": gradient_floor(x, y, n_steps, feature_major=False),
            "grad_floor_feature_major": gradient_floor(x, y, n_steps, feature_major=True)}
    for run in runs.values():
        run()   # first call outside the timing
    times = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * float(np.median(t)) / n_steps for name, t in times.items()}
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                         f"{jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}",
              "started": started, "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "cpu_affinity": sorted(os.sched_getaffinity(0)),
              "shape": [N_ROWS, N_COLUMNS], "transitions": args.transitions,
              "n_leapfrogs": hmc_blr.N_LEAPFROGS, "reps": args.reps,
              "ms_per_leapfrog_median": ms,
              "ratio_vs_grad_floor_feature_major": {k: v / ms["grad_floor_feature_major"]
                                                    for k, v in ms.items()},
              "numpyro_published_cpu_ms": NUMPYRO_PUBLISHED_MS, "all_seconds": times}
    print(f"{started}, load {load_before[0]:.1f} -> {report['load_average_after'][0]:.1f}")
    print("ms per leapfrog step: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()) +
          f" (NumPyro paper, CPU: {NUMPYRO_PUBLISHED_MS})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
