"""Speed benchmark: `inference.fit`'s per-step overhead on a tiny model vs NumPyro's `SVI.run`.

The model is Bayesian linear regression, w ~ N(0, I_5), y ~ N(X w, 1) with 1000 rows, and the
variational posterior a diagonal normal over w; both libraries fit it by one-sample SGVB with Adam
(1e-2) on the full data at every step, so each step is a few microseconds of arithmetic and the
driver's own cost (dispatch, bookkeeping, progress reporting) is what is measured:

- `fit`: `inference.fit(..., batch_size=N, n_epochs=n_steps)` (an epoch is one step here; short
  epochs share one compiled call), with and without the progress bar;
- `SVI.run`: `numpyro.infer.SVI(...).run(key, n_steps, x, y)` with the same model and a guide
  written like ours (no autoguide), with `progress_bar=False` (one `fori_loop`) and `True` (the
  default: one jitted step per Python iteration).

Each call is timed whole (what a user waits for) at two lengths; the difference divided by the
extra steps is the cost per step, the rest the fixed cost of a call (for `SVI.run` it includes
compiling, which it does on every call). Calls of all contenders are interleaved in rounds.
Target: `fit` faster per step than `SVI.run`.

Run: `.venv/bin/python -m benchmarks.fit_tiny [--steps 2000 --rounds 5]`; a check at tiny size:
`--steps 100 --rounds 1`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import SVI, Trace_ELBO
from numpyro.optim import optax_to_numpyro

import inference
import ppl

__all__ = ["main"]

N, D = 1000, 5


@ppl.meta_bayesian_net
def blr(x):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(D), std=1.0, group_ndims=1)
    bn.normal("y", x @ w, std=1.0, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def q_net(params):
    bn = ppl.BayesianNet()
    bn.normal("w", params["loc"], logstd=params["log_scale"], group_ndims=1)
    return bn


def loss_fn(params, key, batch, state):
    x, y = batch
    q = q_net(params).observe(key)
    return inference.elbo(blr(x), {"y": y}, variational=q).sgvb(), (state, {})


def numpyro_model(x, y):
    w = numpyro.sample("w", dist.Normal(jnp.zeros(D), 1.0).to_event(1))
    numpyro.sample("y", dist.Normal(x @ w, 1.0).to_event(1), obs=y)


def numpyro_guide(x, y):
    loc = numpyro.param("loc", jnp.zeros(D))
    log_scale = numpyro.param("log_scale", jnp.full(D, -3.0))
    numpyro.sample("w", dist.Normal(loc, jnp.exp(log_scale)).to_event(1))


def _contenders(x, y):
    optimizer = optax.adam(1e-2)
    params = {"loc": jnp.zeros(D), "log_scale": jnp.full(D, -3.0)}
    svi = SVI(numpyro_model, numpyro_guide, optax_to_numpyro(optax.adam(1e-2)), Trace_ELBO())

    def with_fit(progress_bar):
        def run(n_steps):
            result = inference.fit(jax.random.key(0), loss_fn, params, optimizer, (x, y), n_epochs=n_steps,
                                   batch_size=N, progress_bar=progress_bar)
            return jax.block_until_ready(result.params)
        return run

    def with_svi(progress_bar):
        def run(n_steps):
            result = svi.run(jax.random.key(0), n_steps, x, y, progress_bar=progress_bar)
            return jax.block_until_ready(result.params)
        return run

    return {"fit": with_fit(False), "fit, progress bar": with_fit(True), "SVI.run, progress_bar=False":
            with_svi(False), "SVI.run (default progress_bar=True)": with_svi(True)}


def main(argv=None) -> int:
    """Times the contenders and prints a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps of the short call (the long: twice)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    key_x, key_w, key_y = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(key_x, (N, D))
    y = x @ jax.random.normal(key_w, (D,)) + jax.random.normal(key_y, (N,))
    contenders = _contenders(x, y)
    first = {}
    for name, run in contenders.items():
        start = time.perf_counter()
        run(args.steps)
        first[name] = time.perf_counter() - start
    times = {name: {args.steps: [], 2 * args.steps: []} for name in contenders}
    names = list(contenders)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            for n_steps in (args.steps, 2 * args.steps):
                start = time.perf_counter()
                contenders[name](n_steps)
                times[name][n_steps].append(time.perf_counter() - start)
    lines = [f"| contender | first call s ({args.steps} steps) | later call s ({args.steps} steps) | "
             "µs per step | fixed s per call |", "|---|---|---|---|---|"]
    for name in names:
        short, long = np.median(times[name][args.steps]), np.median(times[name][2 * args.steps])
        per_step = (long - short) / args.steps
        lines.append(f"| {name} | {first[name]:.2f} | {short:.3f} | {1e6 * per_step:.1f} | "
                     f"{short - per_step * args.steps:.3f} |")
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"Measured {now:%Y-%m-%d %H:%M} UTC on {platform.machine()} "
          f"({os.cpu_count()} CPU cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}), jax "
          f"{jax.__version__}, numpyro {numpyro.__version__}; {N} x {D} regression, {args.rounds} rounds.\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
