"""HMC throughput on Bayesian logistic regression: this library vs BlackJAX `hmc` vs NumPyro `HMC`.

Fixed step size, 10 leapfrog steps, identity mass, no adaptation; scikit-learn's breast cancer set
(569 x 30 standardised features + intercept). BlackJAX and NumPyro's bare kernel run on a
hand-written log-density twice: with the row-major `x @ w` a user would write, and with the
feature-major layout `models.blr` uses (see `plain_log_density`). Each contender's whole run (all
transitions, all chains) is one compiled program, compiled before timing; repetitions of the
contenders are interleaved (the CPU is shared and noisy) and medians reported as transitions per
second (chains x draws / s). Also: ESS per second of adapted HMC (this library) vs NumPyro NUTS
on the same posterior.

Usage: `python -m benchmarks.hmc_blr [--reps 5] [--quick]` (writes `benchmarks/results/hmc_blr.json`);
on a shared machine pin it to one core (`taskset -c 0`), see `benchmarks/README.md`.
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

from inference.diagnostics import effective_sample_size
from inference.hmc import HMC
from inference.log_joint import make_log_joint
from models.blr import build_blr, load_breast_cancer

__all__ = ["main"]

STEP_SIZE, N_LEAPFROGS = 0.02, 10


def plain_log_density(x, y, feature_major=False):
    """Hand-written BLR log-density `w -> log p(y, w)` (up to a constant), closing over the data.

    With `feature_major`, the features are copied once into `x.T` (`[d, n]`) and the logits are
    `w @ x.T`, the layout `models.blr` uses; otherwise `x @ w` on the row-major `[n, d]` features.
    """
    if feature_major:
        x_t = jnp.transpose(x)

        def logits_fn(w):
            return w @ x_t
    else:
        def logits_fn(w):
            return x @ w

    def log_density(w):
        logits = logits_fn(w)
        return jnp.sum(y * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(w ** 2)
    return log_density


def ours(x, y, n_chains, n_samples):
    """`HMC.build_run` on the DSL model: the compiled run, called once here (it compiles then)."""
    model = make_log_joint(build_blr(x), {"y": y})
    run = HMC(step_size=STEP_SIZE, n_leapfrogs=N_LEAPFROGS).build_run(model.log_joint_fn, n_samples, 0)
    keys = jax.random.split(jax.random.key(0), n_chains)
    init = {"w": jnp.zeros((n_chains, x.shape[1]))}
    jax.block_until_ready(run(keys, init).samples)
    return lambda: jax.block_until_ready(run(keys, init).samples["w"])


def blackjax_hmc(x, y, n_chains, n_samples, feature_major=False):
    import blackjax

    algorithm = blackjax.hmc(plain_log_density(x, y, feature_major), STEP_SIZE, jnp.ones(x.shape[1]),
                             N_LEAPFROGS)

    @jax.jit
    def run(key, positions):
        states = jax.vmap(algorithm.init)(positions)

        def body(states, key_t):
            states, _ = jax.vmap(algorithm.step)(jax.random.split(key_t, n_chains), states)
            return states, states.position

        return lax.scan(body, states, jax.random.split(key, n_samples))[1]

    key, positions = jax.random.key(0), jnp.zeros((n_chains, x.shape[1]))
    compiled = run.lower(key, positions).compile()
    return lambda: jax.block_until_ready(compiled(key, positions))


def numpyro_model(x, y=None):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(jnp.zeros(x.shape[1]), 1.0).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def numpyro_hmc(x, y, n_chains, n_samples):
    from numpyro.infer import HMC as NumPyroHMC
    from numpyro.infer import MCMC

    kernel = NumPyroHMC(numpyro_model, step_size=STEP_SIZE, num_steps=N_LEAPFROGS, adapt_step_size=False,
                        adapt_mass_matrix=False)
    mcmc = MCMC(kernel, num_warmup=0, num_samples=n_samples, num_chains=n_chains, chain_method="vectorized",
                progress_bar=False, jit_model_args=True)
    init = {"w": jnp.zeros((n_chains, x.shape[1]) if n_chains > 1 else (x.shape[1],))}

    def run():
        mcmc.run(jax.random.key(0), x, y, init_params=init)
        return jax.block_until_ready(mcmc.get_samples()["w"])

    run()   # compiles; later runs reuse NumPyro's cached executable
    return run


def numpyro_hmc_kernel(x, y, n_chains, n_samples, feature_major=False):
    """NumPyro's HMC kernel (`numpyro.infer.hmc.hmc`) in the same harness: one jitted scan, vmapped chains.

    `MCMC.run` re-traces and re-compiles on every call (seconds of fixed cost), which would swamp
    the per-transition cost; this measures NumPyro's kernel itself.
    """
    from numpyro.infer.hmc import hmc

    log_density = plain_log_density(x, y, feature_major)
    init_kernel, sample_kernel = hmc(potential_fn=lambda w: -log_density(w), algo="HMC")

    @jax.jit
    def run(keys, positions):
        def chain(key, position):
            state = init_kernel(position, num_warmup=0, step_size=STEP_SIZE, adapt_step_size=False,
                                adapt_mass_matrix=False, num_steps=N_LEAPFROGS, rng_key=key)
            return lax.scan(lambda s, _: (sample_kernel(s),) * 2, state, None, length=n_samples)[1].z
        return jax.vmap(chain)(keys, positions)

    keys, positions = jax.random.split(jax.random.key(0), n_chains), jnp.zeros((n_chains, x.shape[1]))
    compiled = run.lower(keys, positions).compile()
    return lambda: jax.block_until_ready(compiled(keys, positions))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(x, y, n_chains, n_samples, reps):
    runs = {"ppl": ours(x, y, n_chains, n_samples), "blackjax": blackjax_hmc(x, y, n_chains, n_samples),
            "numpyro": numpyro_hmc_kernel(x, y, n_chains, n_samples),
            # the same two on the feature-major layout that models.blr uses (`plain_log_density`)
            "blackjax_feature_major": blackjax_hmc(x, y, n_chains, n_samples, feature_major=True),
            "numpyro_feature_major": numpyro_hmc_kernel(x, y, n_chains, n_samples, feature_major=True),
            "numpyro_mcmc_run": numpyro_hmc(x, y, n_chains, n_samples)}
    times = {name: [] for name in runs}
    for _ in range(reps):              # interleaved repetitions
        for name, run in runs.items():
            times[name].append(timed(run))
    medians = {name: float(np.median(t)) for name, t in times.items()}
    per_second = {name: n_chains * n_samples / t for name, t in medians.items()}
    return {"n_chains": n_chains, "n_samples": n_samples, "median_seconds": medians,
            "transitions_per_second": per_second, "all_seconds": times,
            "ratio_vs_blackjax": per_second["ppl"] / per_second["blackjax"],
            "ratio_vs_numpyro": per_second["ppl"] / per_second["numpyro"],
            "ratio_vs_best_numpyro_kernel": per_second["ppl"] / max(per_second["numpyro"],
                                                                    per_second["numpyro_feature_major"]),
            "ratio_vs_best_blackjax": per_second["ppl"] / max(per_second["blackjax"],
                                                              per_second["blackjax_feature_major"])}


def numpyro_nuts_compiled(x, y, n_chains, n_warmup, n_samples):
    """NumPyro NUTS (its default windowed adaptation) as one compiled program: vmapped chains, `lax.scan`.

    NumPyro's own kernel functions (`numpyro.infer.hmc.hmc(algo="NUTS")`) on the feature-major
    log-density that `models.blr` uses, without `MCMC.run`'s per-call re-tracing and compilation.
    Returns `run(keys) -> samples [n_chains, n_samples, d]`, compiled.
    """
    from numpyro.infer.hmc import hmc

    log_density = plain_log_density(x, y, feature_major=True)
    init_kernel, sample_kernel = hmc(potential_fn=lambda w: -log_density(w), algo="NUTS")

    @jax.jit
    def run(keys):
        def chain(key):
            state = init_kernel(jnp.zeros(x.shape[1]), num_warmup=n_warmup, adapt_step_size=True,
                                adapt_mass_matrix=True, target_accept_prob=0.8, rng_key=key)
            return lax.scan(lambda s, _: (sample_kernel(s),) * 2, state, None,
                            length=n_warmup + n_samples)[1].z[n_warmup:]
        return jax.vmap(chain)(keys)

    keys = jax.random.split(jax.random.key(0), n_chains)
    return run.lower(keys).compile()


def ess_per_second(x, y, n_chains, n_warmup, n_samples, reps):
    """Adapted HMC (ours, 10 leapfrogs) vs NumPyro NUTS, warmup + sampling time after compilation.

    NUTS is timed twice: as one compiled program (`numpyro_nuts_compiled`, the like-for-like
    comparison) and through `MCMC.run` (vectorized chains, what a user calls; includes its per-call
    re-tracing). Each repetition uses fresh keys, so the ESS varies between repetitions too.
    """
    from numpyro.infer import MCMC, NUTS

    model = make_log_joint(build_blr(x), {"y": y})
    hmc = HMC(step_size=0.05, n_leapfrogs=N_LEAPFROGS, adapt_step_size=True, adapt_mass=True)
    compiled = hmc.build_run(model.log_joint_fn, n_samples, n_warmup, transform_fn=model.to_constrained)
    init = {"w": jnp.zeros((n_chains, x.shape[1]))}
    jax.block_until_ready(compiled(jax.random.split(jax.random.key(0), n_chains), init).samples)   # compiles
    nuts = numpyro_nuts_compiled(x, y, n_chains, n_warmup, n_samples)
    mcmc = MCMC(NUTS(numpyro_model), num_warmup=n_warmup, num_samples=n_samples, num_chains=n_chains,
                chain_method="vectorized", progress_bar=False, jit_model_args=True)
    mcmc.run(jax.random.key(1), x, y)   # compile
    results = {"ppl_hmc": [], "numpyro_nuts_compiled": [], "numpyro_nuts_mcmc_run": []}
    min_ess = {name: [] for name in results}

    def record(name, seconds, w):
        ess = float(effective_sample_size(np.asarray(w)).min())
        min_ess[name].append(ess)
        results[name].append(ess / seconds)

    for rep in range(reps):
        keys = jax.random.split(jax.random.key(100 + rep), n_chains)
        start = time.perf_counter()
        samples, _ = jax.block_until_ready(compiled(keys, init))
        record("ppl_hmc", time.perf_counter() - start, samples["w"])
        start = time.perf_counter()
        w = jax.block_until_ready(nuts(keys))
        record("numpyro_nuts_compiled", time.perf_counter() - start, w)
        start = time.perf_counter()
        mcmc.run(jax.random.key(100 + rep), x, y)
        w = jax.block_until_ready(mcmc.get_samples(group_by_chain=True)["w"])
        record("numpyro_nuts_mcmc_run", time.perf_counter() - start, w)
    medians = {name: float(np.median(v)) for name, v in results.items()}
    return {"n_chains": n_chains, "n_warmup": n_warmup, "n_samples": n_samples,
            "min_ess_per_second_median": medians, "all": results, "min_ess": min_ess,
            "ratio": medians["ppl_hmc"] / medians["numpyro_nuts_compiled"],
            "ratio_vs_mcmc_run": medians["ppl_hmc"] / medians["numpyro_nuts_mcmc_run"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--ess-only", action="store_true", help="only the ESS-per-second comparison")
    parser.add_argument("--out", default="benchmarks/results/hmc_blr.json")
    args = parser.parse_args(argv)
    x, y, _, _ = load_breast_cancer(0, test_fraction=0.0)
    x, y = jnp.asarray(x), jnp.asarray(y)
    scale = 10 if args.quick else 1
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                         f"{jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}",
              "started": started, "load_average_before": load_before,
              "cpu_affinity": sorted(os.sched_getaffinity(0)),
              "data": f"breast cancer {tuple(x.shape)}", "step_size": STEP_SIZE, "n_leapfrogs": N_LEAPFROGS,
              "throughput": [] if args.ess_only else [throughput(x, y, 1, 2000 // scale, args.reps),
                                                      throughput(x, y, 32, 500 // scale, args.reps)],
              "ess": ess_per_second(x, y, 4, 500 // scale, 1000 // scale, max(1, args.reps // 2))}
    report["load_average_after"] = os.getloadavg()
    print(f"{started}, load {load_before[0]:.1f} -> {report['load_average_after'][0]:.1f}")
    for row in report["throughput"]:
        print(f"{row['n_chains']:>3} chains: transitions/s " +
              ", ".join(f"{k} {v:,.0f}" for k, v in row["transitions_per_second"].items()) +
              f"  (ppl/blackjax {row['ratio_vs_blackjax']:.2f}x, ppl/numpyro {row['ratio_vs_numpyro']:.2f}x)")
    ess = report["ess"]
    print("min ESS/s: " + ", ".join(f"{k} {v:,.1f}" for k, v in ess["min_ess_per_second_median"].items()) +
          f"  (ratio vs compiled NUTS {ess['ratio']:.2f}x, vs MCMC.run {ess['ratio_vs_mcmc_run']:.2f}x)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
