"""First-call compile time and second-call run time of `HMC` and `NUTS` vs NumPyro and BlackJAX NUTS.

Targets: Bayesian logistic regression (breast cancer, 31 weights), non-centred eight schools (10),
and a small exact GP regression (3 positive hyperparameters, 30 points). Each contender is called
twice in one process with every JAX cache cleared before its first call:

- `ppl_hmc`, `ppl_nuts`: `inference.HMC(adaptation="window").sample` / `inference.NUTS().sample` on the
  DSL model (the init program and the sampling program; `programs` counts the programs built);
- `numpyro_nuts`: `MCMC(NUTS(model), chain_method="vectorized", jit_model_args=True).run`;
- `blackjax_nuts`: `window_adaptation` + `nuts` steps in one jitted function (chains by `vmap`) on
  the flat log-density.

Reported per contender: `first_seconds` (compile + run), `second_seconds` (run),
`compile_seconds` = first - second, `first_cpu_seconds` (process CPU time of the first call: less
sensitive to other load on the machine than wall time), and the first call's phases from
`jax.monitoring` (`trace_seconds`, `lower_seconds`, `backend_compile_seconds`, summed over its
programs). NumPyro's `MCMC.run` traces and compiles again on every call
(a fresh `MCMC` object here, as a script does), so its `first_seconds` is the comparable number.
Targets (issue 17): BLR compile < 5 s on the reference CPU, and
ppl's compile time <= NumPyro's and BlackJAX's on every target.

Usage: `python -m benchmarks.compile_time [--quick] [--targets blr,eight_schools,gp]` (writes
`benchmarks/results/compile_time.json`); run it on a quiet machine (`benchmarks/README.md`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import inference
import ppl
from benchmarks.nuts import Target, _blr, _eight_schools, blackjax_user
from inference.compile_cache import PROGRAMS

PHASES = {"trace_seconds": "/jax/core/compile/jaxpr_trace_duration",
          "lower_seconds": "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "backend_compile_seconds": "/jax/core/compile/backend_compile_duration"}
_EVENTS: dict[str, float] = {}


def _record_event(event: str, duration: float, **_) -> None:
    _EVENTS[event] = _EVENTS.get(event, 0.0) + duration


jax.monitoring.register_event_duration_secs_listener(_record_event)

__all__ = ["TARGETS", "main"]

GP_N = 30


@ppl.meta_bayesian_net
def gp_regression(x):
    bn = ppl.BayesianNet()
    lengthscale = bn.stochastic("lengthscale", dist.LogNormal(0.0, 1.0))
    amplitude = bn.stochastic("amplitude", dist.HalfNormal(1.0))
    noise = bn.stochastic("noise", dist.HalfNormal(1.0))
    cov = _gp_cov(x, lengthscale, amplitude, noise)
    bn.stochastic("y", dist.MultivariateNormal(jnp.zeros(x.shape[0]), cov))
    return bn


def _gp_cov(x, lengthscale, amplitude, noise):
    d2 = (x[:, None] - x[None, :]) ** 2
    return amplitude ** 2 * jnp.exp(-0.5 * d2 / lengthscale ** 2) + (noise ** 2 + 1e-5) * jnp.eye(x.shape[0])


def _gp() -> Target:
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.sort(rng.uniform(-3, 3, GP_N)), jnp.float32)
    y = jnp.asarray(np.sin(2 * np.asarray(x)) + 0.2 * rng.normal(size=GP_N), jnp.float32)

    def numpyro_model(x, y):
        lengthscale = numpyro.sample("lengthscale", dist.LogNormal(0.0, 1.0))
        amplitude = numpyro.sample("amplitude", dist.HalfNormal(1.0))
        noise = numpyro.sample("noise", dist.HalfNormal(1.0))
        numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(x.shape[0]), _gp_cov(x, lengthscale, amplitude,
                                                                                   noise)), obs=y)

    def log_density(z):   # log of the three positive hyperparameters, Jacobian included
        lengthscale, amplitude, noise = jnp.exp(z)
        cov = _gp_cov(x, lengthscale, amplitude, noise)
        return (dist.LogNormal(0.0, 1.0).log_prob(lengthscale) + dist.HalfNormal(1.0).log_prob(amplitude)
                + dist.HalfNormal(1.0).log_prob(noise) + jnp.sum(z)
                + dist.MultivariateNormal(jnp.zeros(GP_N), cov).log_prob(y))

    return Target("gp", gp_regression(x), {"y": y}, numpyro_model, {"x": x, "y": y}, log_density, 3)


TARGETS = {"blr": _blr, "eight_schools": _eight_schools, "gp": _gp}


def _ppl(sampler):
    def call(target, seed, n_chains, n_warmup, n_samples):
        return sampler.sample(jax.random.key(seed), target.meta_bn, target.observed, n_samples=n_samples,
                              n_warmup=n_warmup, n_chains=n_chains).samples
    return call


def _numpyro(target, seed, n_chains, n_warmup, n_samples):
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(target.numpyro_model), num_warmup=n_warmup, num_samples=n_samples, num_chains=n_chains,
                chain_method="vectorized", progress_bar=False, jit_model_args=True)
    mcmc.run(jax.random.key(seed), **target.numpyro_kwargs)
    return mcmc.get_samples(group_by_chain=True)


def _blackjax(target, n_chains, n_warmup, n_samples):
    """BlackJAX as `benchmarks.nuts.blackjax_user` writes it: `(call, first-call seconds)`."""
    run = blackjax_user(target, n_chains, n_warmup, n_samples)
    return run.call, run.compile_seconds


CONTENDERS = {"ppl_hmc": _ppl(inference.HMC(step_size=0.1, n_leapfrogs=10, adaptation="window")),
              "ppl_nuts": _ppl(inference.NUTS()), "numpyro_nuts": _numpyro, "blackjax_nuts": None}


def measure(target, name, n_chains, n_warmup, n_samples) -> dict:
    """First- and second-call seconds of one contender, every cache cleared before the first."""
    jax.clear_caches()
    PROGRAMS.clear()
    _EVENTS.clear()
    cpu = time.process_time()
    if name == "blackjax_nuts":   # built and called once inside `_blackjax`
        blackjax_call, first = _blackjax(target, n_chains, n_warmup, n_samples)
        calls, times = [lambda seed: blackjax_call(seed)[0]], [first]
    else:
        calls, times = [lambda seed: CONTENDERS[name](target, seed, n_chains, n_warmup, n_samples)] * 2, []
    for seed, timed in enumerate(calls, start=2 - len(calls)):
        if len(times) == 1:   # the first call is done: its CPU time and phases
            cpu, phases = time.process_time() - cpu, {k: _EVENTS.get(v, 0.0) for k, v in PHASES.items()}
        start = time.perf_counter()
        jax.block_until_ready(timed(seed))
        times.append(time.perf_counter() - start)
    row = {"first_seconds": times[0], "second_seconds": times[1], "compile_seconds": times[0] - times[1],
           "first_cpu_seconds": cpu, **phases}
    if name.startswith("ppl"):
        row["programs"] = PROGRAMS.n_builds
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the script runs)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compile_time.json"))
    args = parser.parse_args(argv)
    n_chains, n_warmup, n_samples = (2, 20, 20) if args.quick else (4, 500, 500)
    results = {"platform": platform.platform(), "jax": jax.__version__, "load_average": os.getloadavg(),
               "sizes": {"n_chains": n_chains, "n_warmup": n_warmup, "n_samples": n_samples}, "targets": {}}
    for name in args.targets.split(","):
        target = TARGETS[name]()
        rows = {contender: measure(target, contender, n_chains, n_warmup, n_samples)
                for contender in CONTENDERS}
        results["targets"][name] = rows
        for contender, row in rows.items():
            print(f"{name:14s} {contender:14s} compile {row['compile_seconds']:7.2f} s   "
                  f"second call {row['second_seconds']:7.3f} s   programs {row.get('programs', '-')}   "
                  f"first call: cpu {row['first_cpu_seconds']:6.2f} s, trace {row['trace_seconds']:5.2f}, "
                  f"lower {row['lower_seconds']:5.2f}, XLA {row['backend_compile_seconds']:6.2f} s")
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
