"""Cost of the observation checks (`ppl.checks`): eager calls pay a few small reductions; jitted
programs pay nothing (traced observations are not checked, so the compiled program is unchanged:
`tests/ppl/test_observation_checks.py` asserts the jaxpr equals the hand-written log-density).

For Bernoulli observations of `n` values (binary pixels), this times, per call and in milliseconds:

- `observe`: `ppl.BayesianNet(observed={"x": x}).bernoulli("x", logits)` eagerly, the checks included
  (dtype, shape, NaN/inf count, support count);
- `unchecked`: the same node observed under `ppl.out_of_support("ignore")` (no support check; the
  NaN/inf count remains), to split the two checks' costs;
- `log_prob`: the node's `log_prob` computed eagerly, the work the observation is for.

Run: `python -m benchmarks.observation_checks [--sizes 1000 100000 1000000 --repeats 50]`.
Target (quiet CPU): an eager `observe`, checks included, costs less than the eager `log_prob` of the
same node at every size (the checks are two reductions and one host transfer of a boolean each).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import ppl


def _time_ms(fn, repeats: int) -> float:
    fn()                                                  # warm up (compile the eager kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def measure(n: int, repeats: int) -> dict[str, float]:
    """Median milliseconds per call of the three operations for `n` Bernoulli observations."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 2, size=n).astype(np.float32))
    logits = jnp.zeros(n)

    def observe():
        bn = ppl.BayesianNet(observed={"x": x})
        return bn.bernoulli("x", logits=logits)

    def unchecked():
        with ppl.out_of_support("ignore"):
            return observe()

    def log_prob():
        bn = ppl.BayesianNet(observed={"x": x})
        bn.bernoulli("x", logits=logits)
        return bn["x"].log_prob

    return {"observe": _time_ms(observe, repeats), "unchecked": _time_ms(unchecked, repeats),
            "log_prob": _time_ms(log_prob, repeats)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()}, {jax.devices()[0].platform}")
    print(f"{'n':>10} {'observe ms':>12} {'unchecked ms':>13} {'log_prob ms':>12}")
    for n in args.sizes:
        result = measure(n, args.repeats)
        print(f"{n:>10} {result['observe']:>12.3f} {result['unchecked']:>13.3f} {result['log_prob']:>12.3f}")


if __name__ == "__main__":
    main()
