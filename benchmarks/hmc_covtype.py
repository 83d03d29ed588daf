"""HMC on a COVTYPE-sized logistic regression (581,012 x 55, synthetic values): ms per leapfrog step.

NumPyro's paper reports 27.8 ms per leapfrog step on CPU for HMC on COVTYPE (Phan, Pradhan and
Jankowiak, `Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro
<https://arxiv.org/abs/1912.11554>`_, 2019, Table 2). Here the same shape with synthetic features,
one chain, fixed step size, 10 leapfrog steps per transition, compiled before timing; this library,
BlackJAX and NumPyro run interleaved in one process and medians are reported.

Usage: `python -m benchmarks.hmc_covtype [--reps 3] [--transitions 5]`
(writes `benchmarks/results/hmc_covtype.json`).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import hmc_blr

__all__ = ["main"]

N_ROWS, N_COLUMNS = 581_012, 55
NUMPYRO_PUBLISHED_MS = 27.8


def synthetic_covtype(key):
    key_x, key_w, key_y = jax.random.split(key, 3)
    x = jax.random.normal(key_x, (N_ROWS, N_COLUMNS - 1))
    x = jnp.concatenate([x, jnp.ones((N_ROWS, 1))], axis=1)
    w = jax.random.normal(key_w, (N_COLUMNS,)) * 0.3
    y = jax.random.bernoulli(key_y, jax.nn.sigmoid(x @ w)).astype(jnp.float32)
    return x, y


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--transitions", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/hmc_covtype.json")
    args = parser.parse_args(argv)
    hmc_blr.STEP_SIZE = 1e-4   # a large data set concentrates the posterior
    x, y = synthetic_covtype(jax.random.key(0))
    runs = {"ppl": hmc_blr.ours(x, y, 1, args.transitions),
            "blackjax": hmc_blr.blackjax_hmc(x, y, 1, args.transitions),
            "numpyro": hmc_blr.numpyro_hmc(x, y, 1, args.transitions)}
    times = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    n_steps = args.transitions * hmc_blr.N_LEAPFROGS
    ms = {name: 1000 * float(np.median(t)) / n_steps for name, t in times.items()}
    report = {"machine": f"{platform.processor() or platform.machine()}, {jax.device_count()} x "
                         f"{jax.devices()[0].device_kind}, jax {jax.__version__}",
              "shape": [N_ROWS, N_COLUMNS], "transitions": args.transitions,
              "ms_per_leapfrog_median": ms, "numpyro_published_cpu_ms": NUMPYRO_PUBLISHED_MS,
              "all_seconds": times}
    print("ms per leapfrog step: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()) +
          f" (NumPyro paper, CPU: {NUMPYRO_PUBLISHED_MS})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
