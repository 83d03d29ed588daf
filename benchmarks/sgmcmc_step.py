"""Step time of SGLD and SGHMC on the BNN (Boston housing, 50 hidden units, batch 32): this library
(the DSL model, `inference.sgmcmc`) against the same sampler hand-written in plain JAX, and against
BlackJAX's `sgld` / `sghmc`.

Each contender runs `--steps` steps in one jitted `lax.scan` over the same precomputed minibatch
indices; repetitions are interleaved (the CPU is shared) and the median time per step is reported,
with the ratio to the plain-JAX version. BlackJAX's `sghmc` resamples the momentum every call of
`num_integration_steps=10` steps; its time is per gradient step.

Usage: `python -m benchmarks.sgmcmc_step [--steps 500] [--reps 7]` (writes
`benchmarks/results/sgmcmc_step.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import gammaln

from inference.sgmcmc import SGHMC, SGLD, scaled_log_joint
from models import bnn
from models.data import uci

LR, FRICTION, BATCH, HIDDEN = 1e-4, 0.25, 32, 50


def plain_log_prior(position):
    shape, rate = bnn.NOISE_PRIOR
    u = position["log_tau"]
    weights = sum(jnp.sum(-0.5 * w**2 - 0.5 * jnp.log(2 * jnp.pi))
                  for name, w in position.items() if name != "log_tau")
    return weights + shape * jnp.log(rate) - gammaln(shape) + shape * u - rate * jnp.exp(u)


def plain_log_likelihood(position, x, y):
    mean = bnn.forward([position["w0"], position["w1"]], x)
    log_std = -0.5 * position["log_tau"]
    return -0.5 * ((y - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)


def make_runs(x, y, index):
    n = x.shape[0]
    scale = n / BATCH
    layer_sizes = (x.shape[1], HIDDEN, 1)

    def ours(sampler):
        def run(key, position):
            def body(state, t):
                model = bnn.build_bnn(x[index[t]], layer_sizes, weight_prior=None)  # N(0, 1) weights
                model.log_joint = scaled_log_joint(scale, ["y"])
                return sampler.step(jax.random.fold_in(key, t), state, model, {"y": y[index[t]]})[0], None
            return jax.lax.scan(body, sampler.init(position), jnp.arange(index.shape[0]))[0].position
        return run

    def plain_grad(position, t):
        return jax.grad(lambda p: plain_log_prior(p) + scale * jnp.sum(plain_log_likelihood(p, x[index[t]],
                                                                                           y[index[t]])))(position)

    def noise(key, tree, std):  # one draw for all leaves, as BlackJAX's generate_gaussian_noise
        flat, unravel = ravel_pytree(tree)
        return unravel(std * jax.random.normal(key, flat.shape, flat.dtype))

    def plain_sgld(key, position):
        def body(position, t):
            g = plain_grad(position, t)
            xi = noise(jax.random.fold_in(key, t), position, math.sqrt(LR))
            return jax.tree.map(lambda z, g, n: z + 0.5 * LR * g + n, position, g, xi), None
        return jax.lax.scan(body, position, jnp.arange(index.shape[0]))[0]

    def plain_sghmc(key, position):
        decay = math.exp(-0.5 * FRICTION)

        def body(carry, t):
            position, v = carry
            key_v, key_n = jax.random.split(jax.random.fold_in(key, t))
            v = jax.lax.cond(t % 20 == 0, lambda: noise(key_v, v, math.sqrt(LR)), lambda: v)
            half = jax.tree.map(lambda z, v: z + 0.5 * v, position, v)
            g = plain_grad(half, t)
            xi = noise(key_n, v, math.sqrt(2 * FRICTION * LR))
            v = jax.tree.map(lambda v, g, n: decay * (decay * v + LR * g + n), v, g, xi)
            return (jax.tree.map(lambda z, v: z + 0.5 * v, half, v), v), None

        v0 = jax.tree.map(jnp.zeros_like, position)
        return jax.lax.scan(body, (position, v0), jnp.arange(index.shape[0]))[0][0]

    grad_estimator = blackjax.sgmcmc.gradients.grad_estimator(
        plain_log_prior, lambda p, batch: plain_log_likelihood(p, batch[0][None], batch[1][None])[0], n)

    def blackjax_sgld(key, position):
        sgld = blackjax.sgld(grad_estimator)

        def body(position, t):
            return sgld.step(jax.random.fold_in(key, t), position, (x[index[t]], y[index[t]]), 0.5 * LR), None
        return jax.lax.scan(body, position, jnp.arange(index.shape[0]))[0]

    def blackjax_sghmc(key, position):
        sghmc = blackjax.sghmc(grad_estimator, num_integration_steps=10, alpha=FRICTION)

        def body(position, t):  # one call = 10 gradient steps on the same minibatch
            return sghmc.step(jax.random.fold_in(key, t), position, (x[index[t]], y[index[t]]),
                              math.sqrt(LR)), None
        return jax.lax.scan(body, position, jnp.arange(index.shape[0] // 10))[0]

    return {"sgld": {"ours": ours(SGLD(LR)), "plain": plain_sgld, "blackjax": blackjax_sgld},
            "sghmc": {"ours": ours(SGHMC(LR, friction=FRICTION)), "plain": plain_sghmc,
                      "blackjax": blackjax_sghmc}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/sgmcmc_step.json")
    args = parser.parse_args(argv)
    data = uci.standardize(uci.load_uci("boston", split=0))
    x, y = jnp.asarray(data.x_train, jnp.float32), jnp.asarray(data.y_train, jnp.float32)
    rng = np.random.default_rng(0)
    index = jnp.asarray(np.stack([rng.choice(x.shape[0], BATCH, replace=False) for _ in range(args.steps)]))
    position = bnn.init_latent(jax.random.key(0), (x.shape[1], HIDDEN, 1), weight_prior=None)
    results = {}
    for sampler, runs in make_runs(x, y, index).items():
        jitted = {name: jax.jit(run) for name, run in runs.items()}
        for run in jitted.values():  # compile and warm up
            jax.block_until_ready(run(jax.random.key(1), position))
        times = {name: [] for name in jitted}
        for rep in range(args.reps):
            for name, run in jitted.items():  # interleaved
                start = time.perf_counter()
                jax.block_until_ready(run(jax.random.key(rep), position))
                times[name].append((time.perf_counter() - start) / args.steps)
        median = {name: float(np.median(t)) for name, t in times.items()}
        results[sampler] = {"median_seconds_per_step": median,
                            "ratio_to_plain": {name: median[name] / median["plain"] for name in median},
                            "all_seconds_per_step": times}
        print(sampler, {name: f"{1e6 * m:.1f} us/step ({m / median['plain']:.3f}x plain)"
                        for name, m in median.items()}, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": args.steps, "reps": args.reps, "batch_size": BATCH, "hidden": HIDDEN,
                               "device": str(jax.devices()[0]), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
