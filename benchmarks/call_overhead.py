"""The fixed cost of a second `NUTS.sample` call: a second call at 1 + 1 draws against one at the
benchmark's 1000 + 1000 (issue 11's target: under 5% of the run).

The tiny call's time bounds the per-call overhead from above (cache lookup, argument checks, the
init program, copying results back, the diagnostics' warnings), since it includes its own two
transitions. Usage: `python -m benchmarks.call_overhead` on a quiet machine.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

import inference
from benchmarks.nuts import TARGETS


def second_call_seconds(target, n_chains: int, n_warmup: int, n_samples: int, seeds) -> float:
    """Median wall seconds of `NUTS.sample` calls after a first (compiling) one."""
    sampler = inference.NUTS()

    def call(seed):
        start = time.perf_counter()
        result = sampler.sample(jax.random.key(seed), target.meta_bn, target.observed, n_samples=n_samples,
                                n_warmup=n_warmup, n_chains=n_chains)
        jax.block_until_ready(result.samples)
        return time.perf_counter() - start
    call(0)
    return float(np.median([call(seed) for seed in seeds]))


def main() -> None:
    print("load average", os.getloadavg())
    for name in ("blr", "eight_schools"):
        target = TARGETS[name]()
        for n_chains in (1, 16):
            run = second_call_seconds(target, n_chains, 1000, 1000, (1, 2, 3))
            tiny = second_call_seconds(target, n_chains, 1, 1, range(1, 8))
            print(f"{name} {n_chains} chains: second call {run:.3f} s; a second call of 1 + 1 draws "
                  f"{tiny * 1e3:.1f} ms = {tiny / run:.1%} of the run", flush=True)


if __name__ == "__main__":
    main()
