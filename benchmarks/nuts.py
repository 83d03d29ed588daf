"""NUTS and ChEES against NumPyro and BlackJAX: ESS per second and per gradient, on four posteriors.

Targets: Bayesian logistic regression (scikit-learn's breast cancer, 31 weights), non-centred eight
schools (10), a radon-like hierarchical regression (synthetic data with the real shape: 919
observations in 85 counties; 89 parameters), and a 100-d Gaussian with AR(1) correlation 0.9.

Contenders, each compiled before timing (compile seconds reported separately), repetitions
interleaved in one process, medians reported:

- `ppl_sample`: `inference.NUTS().sample(key, model, observed, ...)` as a user calls it: the
  second call (the first compiles; the second reuses the program), warmup included.
- `numpyro_mcmc`: NumPyro `MCMC(NUTS(model)).run(...)`, its second call (`jit_model_args=True`,
  `chain_method="vectorized"`), warmup included. (It re-compiles on every call, seconds each.)
- `ppl_run`: `inference.NUTS().run(key, log_density, init, ...)` on the same flat log-density as
  the next two (the samplers compared on an identical density; `flat_ratio_*`).
- `numpyro_compiled`: NumPyro's NUTS kernel with its own warmup in one jitted function on the flat
  log-density (no per-call compilation): the stronger NumPyro baseline. `ratio_vs_numpyro` is
  against the better of the two.
- `blackjax_user`: BlackJAX `window_adaptation` + `nuts` steps in one jitted function (chains by
  `vmap`), as its documentation writes it; second call.
- kernel alone (`ppl_kernel`, `numpyro_kernel`, `blackjax_kernel`): each library's NUTS transition
  in one jitted `lax.scan` (chains by `vmap`), from the same start with the same step size and
  diagonal inverse mass matrix (ours, tuned by a warmup run first), sampling only.
- ChEES at 64 chains: `inference.ChEES().sample` vs BlackJAX `chees_adaptation` + `dynamic_hmc`.

Metrics: ESS per second = min over parameters of the multi-chain ESS (`inference.diagnostics`),
divided by the call's wall time; ESS per gradient = the same ESS over the leapfrog steps of the
sampling phase. Targets (issue 11): NUTS ESS/s >= 1.3x NumPyro's and >= BlackJAX's at 1 and 16
chains; second-call overhead < 5% of the run.

Usage: `python -m benchmarks.nuts [--reps 5] [--quick] [--targets blr,eight_schools,radon,gaussian100]`
(writes `benchmarks/results/nuts.json`); run it on a quiet machine (`benchmarks/README.md`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax

import inference
import ppl
from inference.diagnostics import effective_sample_size

__all__ = ["TARGETS", "main"]


class Target(NamedTuple):
    """One posterior in three forms: a ppl model, a NumPyro model, a flat log-density."""

    name: str
    meta_bn: object            # ppl.MetaBayesianNet
    observed: dict
    numpyro_model: Callable    # model(**numpyro_kwargs)
    numpyro_kwargs: dict
    log_density: Callable      # flat unconstrained [d] -> log p (for BlackJAX and the kernels)
    dim: int


def _blr() -> Target:
    from models.blr import build_blr, load_breast_cancer

    x, y, _, _ = load_breast_cancer(0, test_fraction=0.0)
    x, y = jnp.asarray(x), jnp.asarray(y)
    x_t = x.T

    def numpyro_model(x, y):
        w = numpyro.sample("w", dist.Normal(jnp.zeros(x.shape[1]), 1.0).to_event(1))
        numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)

    def log_density(w):
        logits = w @ x_t
        return jnp.sum(y * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(w ** 2)

    return Target("blr", build_blr(x), {"y": y}, numpyro_model, {"x": x, "y": y}, log_density, x.shape[1])


SCHOOLS_Y = jnp.array([28., 8., -3., 7., -1., 1., 18., 12.])
SCHOOLS_SIGMA = jnp.array([15., 10., 16., 11., 9., 11., 10., 18.])


@ppl.meta_bayesian_net
def eight_schools_noncentered(sigma):
    bn = ppl.BayesianNet()
    mu = bn.normal("mu", 0.0, std=5.0)
    tau = bn.stochastic("tau", dist.HalfCauchy(5.0))
    theta_tilde = bn.normal("theta_tilde", jnp.zeros(sigma.shape[0]), std=1.0, group_ndims=1)
    bn.normal("y", mu + tau * theta_tilde, std=sigma, group_ndims=1)
    return bn


def _eight_schools() -> Target:
    def numpyro_model(sigma, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(jnp.zeros(8), 1.0).to_event(1))
        numpyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma).to_event(1), obs=y)

    def log_density(z):   # [mu, log tau, theta_tilde (8)] (ravel_pytree's order), Jacobian included
        mu, log_tau, theta = z[0], z[1], z[2:]
        tau = jnp.exp(log_tau)
        return (dist.Normal(0.0, 5.0).log_prob(mu) + dist.HalfCauchy(5.0).log_prob(tau) + log_tau
                + jnp.sum(dist.Normal(0.0, 1.0).log_prob(theta))
                + jnp.sum(dist.Normal(mu + tau * theta, SCHOOLS_SIGMA).log_prob(SCHOOLS_Y)))

    return Target("eight_schools", eight_schools_noncentered(SCHOOLS_SIGMA), {"y": SCHOOLS_Y}, numpyro_model,
                  {"sigma": SCHOOLS_SIGMA, "y": SCHOOLS_Y}, log_density, 10)


N_RADON, N_COUNTIES = 919, 85


def radon_data(seed: int = 0):
    """Synthetic data with the shape of Gelman and Hill's Minnesota radon set: 919 houses in 85
    counties of very unequal sizes (1 to ~100 houses), a floor indicator, log radon."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, N_COUNTIES + 1) ** 0.9
    county = np.concatenate([np.arange(N_COUNTIES),
                             rng.choice(N_COUNTIES, N_RADON - N_COUNTIES, p=weights / weights.sum())])
    floor = (rng.random(N_RADON) < 0.2).astype(np.float32)
    a = 1.5 + 0.3 * rng.normal(size=N_COUNTIES)
    log_radon = a[county] - 0.7 * floor + 0.75 * rng.normal(size=N_RADON)
    return jnp.asarray(county, jnp.int32), jnp.asarray(floor), jnp.asarray(log_radon, jnp.float32)


@ppl.meta_bayesian_net
def radon_model(county, floor):
    """Varying intercepts (centred): a_j ~ N(mu_a, sigma_a), y ~ N(a[county] + b floor, sigma_y)."""
    bn = ppl.BayesianNet()
    mu_a = bn.normal("mu_a", 0.0, std=10.0)
    sigma_a = bn.stochastic("sigma_a", dist.HalfNormal(5.0))
    a = bn.normal("a", jnp.broadcast_to(mu_a, (N_COUNTIES,)), std=jnp.broadcast_to(sigma_a, (N_COUNTIES,)),
                  group_ndims=1)
    b = bn.normal("b", 0.0, std=10.0)
    sigma_y = bn.stochastic("sigma_y", dist.HalfNormal(5.0))
    bn.normal("y", a[county] + b * floor, std=sigma_y, group_ndims=1)
    return bn


def _radon() -> Target:
    county, floor, y = radon_data()

    def numpyro_model(county, floor, y):
        mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 10.0))
        sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(5.0))
        a = numpyro.sample("a", dist.Normal(mu_a, sigma_a).expand([N_COUNTIES]).to_event(1))
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(5.0))
        numpyro.sample("y", dist.Normal(a[county] + b * floor, sigma_y).to_event(1), obs=y)

    def log_density(z):   # [a (85), b, mu_a, log sigma_a, log sigma_y]: the order of ravel_pytree
        a, b, mu_a, log_sa, log_sy = z[:N_COUNTIES], z[-4], z[-3], z[-2], z[-1]
        sigma_a, sigma_y = jnp.exp(log_sa), jnp.exp(log_sy)
        return (dist.Normal(0.0, 10.0).log_prob(mu_a) + dist.HalfNormal(5.0).log_prob(sigma_a) + log_sa
                + jnp.sum(dist.Normal(mu_a, sigma_a).log_prob(a)) + dist.Normal(0.0, 10.0).log_prob(b)
                + dist.HalfNormal(5.0).log_prob(sigma_y) + log_sy
                + jnp.sum(dist.Normal(a[county] + b * floor, sigma_y).log_prob(y)))

    return Target("radon", radon_model(county, floor), {"y": y}, numpyro_model,
                  {"county": county, "floor": floor, "y": y}, log_density, N_COUNTIES + 4)


def _gaussian100() -> Target:
    dim, rho = 100, 0.9
    index = np.arange(dim)
    cov = rho ** np.abs(index[:, None] - index[None, :])
    chol = jnp.asarray(np.linalg.cholesky(cov), jnp.float32)
    precision = jnp.asarray(np.linalg.inv(cov), jnp.float32)

    @ppl.meta_bayesian_net
    def gaussian(cov_tril):
        bn = ppl.BayesianNet()
        bn.multivariate_normal_cholesky("x", jnp.zeros(cov_tril.shape[0]), cov_tril)
        return bn

    def numpyro_model(cov_tril):
        numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(dim), scale_tril=cov_tril))

    return Target("gaussian100", gaussian(chol), {}, numpyro_model, {"cov_tril": chol},
                  lambda x: -0.5 * x @ precision @ x, dim)


TARGETS = {"blr": _blr, "eight_schools": _eight_schools, "radon": _radon, "gaussian100": _gaussian100}


def _min_ess(draws) -> float:
    """Min over parameters of the multi-chain ESS; `draws` a dict or array, leaves [chains, draws, ...]."""
    leaves = [np.asarray(x, np.float64).reshape(x.shape[0], x.shape[1], -1) for x in jax.tree.leaves(draws)]
    return float(effective_sample_size(np.concatenate(leaves, axis=-1)).min())


class Run(NamedTuple):
    call: Callable[[int], tuple]   # seed -> (draws [chains, draws, ...], sampling-phase gradient evaluations)
    compile_seconds: float


def _timed_first(call) -> Run:
    start = time.perf_counter()
    jax.block_until_ready(call(0))
    return Run(call, time.perf_counter() - start)


def ppl_sample(target, n_chains, n_warmup, n_samples, sampler=None) -> Run:
    sampler = sampler or inference.NUTS()

    def call(seed):
        result = sampler.sample(jax.random.key(seed), target.meta_bn, target.observed, n_samples=n_samples,
                                n_warmup=n_warmup, n_chains=n_chains)
        return result.samples, result.info.n_leapfrogs
    return _timed_first(call)


def ppl_run(target, n_chains, n_warmup, n_samples) -> Run:
    """`inference.NUTS().run` on the flat log-density the other libraries' contenders use (same start
    distribution, uniform in [-2, 2]): the sampler compared on an identical density."""
    sampler = inference.NUTS()

    def call(seed):
        key_init, key_run = jax.random.split(jax.random.key(seed))
        init = jax.random.uniform(key_init, (n_chains, target.dim), minval=-2.0, maxval=2.0)
        result = sampler.run(key_run, target.log_density, init, n_samples=n_samples, n_warmup=n_warmup)
        return result.samples, result.info.n_leapfrogs
    return _timed_first(call)


def numpyro_mcmc(target, n_chains, n_warmup, n_samples) -> Run:
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(target.numpyro_model), num_warmup=n_warmup, num_samples=n_samples, num_chains=n_chains,
                chain_method="vectorized", progress_bar=False, jit_model_args=True)

    def call(seed):
        mcmc.run(jax.random.key(seed), extra_fields=("num_steps",), **target.numpyro_kwargs)
        steps = mcmc.get_extra_fields(group_by_chain=True)["num_steps"]
        return mcmc.get_samples(group_by_chain=True), steps
    return _timed_first(call)


def numpyro_compiled(target, n_chains, n_warmup, n_samples) -> Run:
    """NumPyro's NUTS with its own warmup (`numpyro.infer.hmc.hmc`) in one jitted function, chains by
    `vmap`, on the flat log-density: NumPyro without `MCMC.run`'s per-call re-compilation."""
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn=lambda z: -target.log_density(z), algo="NUTS")

    @jax.jit
    def run(key):
        def chain(key):
            key_init, key_run = jax.random.split(key)
            position = jax.random.uniform(key_init, (target.dim,), minval=-2.0, maxval=2.0)
            state = init_kernel(position, num_warmup=n_warmup, rng_key=key_run)

            def body(state, _):
                state = sample_kernel(state)
                return state, (state.z, state.num_steps)
            positions, steps = lax.scan(body, state, None, length=n_warmup + n_samples)[1]
            return positions[n_warmup:], steps[n_warmup:]
        return jax.vmap(chain)(jax.random.split(key, n_chains))
    return _timed_first(lambda seed: run(jax.random.key(seed)))


def blackjax_user(target, n_chains, n_warmup, n_samples) -> Run:
    import blackjax

    @jax.jit
    def run(key):
        def chain(key):
            key_init, key_warm, key_sample = jax.random.split(key, 3)
            position = jax.random.uniform(key_init, (target.dim,), minval=-2.0, maxval=2.0)
            warmup = blackjax.window_adaptation(blackjax.nuts, target.log_density)
            (state, parameters), _ = warmup.run(key_warm, position, num_steps=n_warmup)
            kernel = blackjax.nuts(target.log_density, **parameters).step

            def body(state, k):
                state, info = kernel(k, state)
                return state, (state.position, info.num_integration_steps)
            return lax.scan(body, state, jax.random.split(key_sample, n_samples))[1]
        return jax.vmap(chain)(jax.random.split(key, n_chains))
    return _timed_first(lambda seed: run(jax.random.key(seed)))


def kernels(target, n_chains, n_samples, step_size, inverse_mass, start) -> dict[str, Run]:
    """Each library's NUTS transition alone, same start (`[n_chains, d]`, in the posterior), step size
    and diagonal inverse mass; the peers' chains by `jax.vmap`, ours by `kernel.batched` (the chains
    in lockstep), as each library's documentation batches chains."""
    import blackjax
    from numpyro.infer.hmc import hmc

    ours = inference.hmc.nuts.build_kernel()
    init_numpyro, sample_numpyro = hmc(potential_fn=lambda z: -target.log_density(z), algo="NUTS")
    blackjax_nuts = blackjax.nuts(target.log_density, step_size, inverse_mass)

    def ppl_chains(keys, positions):   # all chains at once (`kernel.batched`, what `NUTS.sample` runs)
        n = keys.shape[0]
        step_sizes = jnp.full((n,), step_size)
        masses = jnp.broadcast_to(inverse_mass, (n, *inverse_mass.shape))

        def body(states, k):
            states, info = ours.batched(k, states, target.log_density, step_sizes, masses)
            return states, (states.position, info.n_leapfrogs)
        states = jax.vmap(lambda p: inference.hmc.init(p, target.log_density))(positions)
        per_draw = jax.vmap(lambda key: jax.random.split(key, n_samples))(keys).swapaxes(0, 1)
        draws, steps = lax.scan(body, states, per_draw)[1]
        return draws.swapaxes(0, 1), steps.swapaxes(0, 1)

    def numpyro_chain(key, position):
        state = init_numpyro(position, num_warmup=0, step_size=step_size, inverse_mass_matrix=inverse_mass,
                             adapt_step_size=False, adapt_mass_matrix=False, rng_key=key)
        def body(state, _):
            state = sample_numpyro(state)
            return state, (state.z, state.num_steps)
        return lax.scan(body, state, None, length=n_samples)[1]

    def blackjax_chain(key, position):
        def body(state, k):
            state, info = blackjax_nuts.step(k, state)
            return state, (state.position, info.num_integration_steps)
        return lax.scan(body, blackjax_nuts.init(position), jax.random.split(key, n_samples))[1]

    runs = {}
    for name, chains in [("ppl_kernel", ppl_chains), ("numpyro_kernel", jax.vmap(numpyro_chain)),
                         ("blackjax_kernel", jax.vmap(blackjax_chain))]:
        fn = jax.jit(lambda key, fn=chains: fn(jax.random.split(key, n_chains), start))
        runs[name] = _timed_first(lambda seed, fn=fn: fn(jax.random.key(seed)))
    return runs


def blackjax_chees(target, n_chains, n_warmup, n_samples) -> Run:
    import blackjax
    import optax

    @jax.jit
    def run(key):
        key_init, key_warm, key_sample = jax.random.split(key, 3)
        positions = jax.random.uniform(key_init, (n_chains, target.dim), minval=-2.0, maxval=2.0)
        warmup = blackjax.chees_adaptation(target.log_density, n_chains)
        (states, parameters), _ = warmup.run(key_warm, positions, 0.1, optax.adam(0.025), n_warmup)
        kernel = blackjax.dynamic_hmc(target.log_density, **parameters).step

        def body(states, k):
            states, info = jax.vmap(kernel)(jax.random.split(k, n_chains), states)
            return states, (states.position, info.num_integration_steps)
        positions, steps = lax.scan(body, states, jax.random.split(key_sample, n_samples))[1]
        return jnp.swapaxes(positions, 0, 1), jnp.swapaxes(steps, 0, 1)
    return _timed_first(lambda seed: run(jax.random.key(seed)))


def compare(runs: dict[str, Run], reps: int) -> dict:
    """Interleaved repetitions; medians of ESS/s, ESS per gradient, seconds."""
    fields = ("seconds", "ess_per_second", "ess_per_gradient", "min_ess")
    rows = {name: {field: [] for field in fields} for name in runs}
    for rep in range(reps):
        for name, run in runs.items():
            start = time.perf_counter()
            draws, steps = jax.block_until_ready(run.call(rep + 1))
            seconds = time.perf_counter() - start
            ess = _min_ess(draws)
            row = rows[name]
            row["seconds"].append(seconds)
            row["min_ess"].append(ess)
            row["ess_per_second"].append(ess / seconds)
            row["ess_per_gradient"].append(ess / float(np.sum(np.asarray(steps))))
    summary = {name: {key: float(np.median(values)) for key, values in row.items()} | {
        "compile_seconds": runs[name].compile_seconds, "all": row} for name, row in rows.items()}
    return summary


def benchmark_target(target: Target, n_chains: int, n_warmup: int, n_samples: int, reps: int) -> dict:
    runs = {"ppl_sample": ppl_sample(target, n_chains, n_warmup, n_samples),
            "ppl_run": ppl_run(target, n_chains, n_warmup, n_samples),
            "numpyro_mcmc": numpyro_mcmc(target, n_chains, n_warmup, n_samples),
            "numpyro_compiled": numpyro_compiled(target, n_chains, n_warmup, n_samples),
            "blackjax_user": blackjax_user(target, n_chains, n_warmup, n_samples)}
    # the kernels start where a warmup ended (in the posterior) with chain 0's step size and mass
    tuned = inference.NUTS().sample(jax.random.key(99), target.meta_bn, target.observed, n_samples=1,
                                    n_warmup=n_warmup, n_chains=n_chains).state
    start = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(tuned.position)
    step_size, inverse_mass = float(tuned.step_size[0]), tuned.inverse_mass_matrix[0]
    runs |= kernels(target, n_chains, n_samples, step_size, inverse_mass, start)
    result = compare(runs, reps)
    eps = {name: row["ess_per_second"] for name, row in result.items()}
    return {"target": target.name, "dim": target.dim, "n_chains": n_chains, "n_warmup": n_warmup,
            "n_samples": n_samples, "contenders": result,
            "ratio_vs_numpyro": eps["ppl_sample"] / max(eps["numpyro_mcmc"], eps["numpyro_compiled"]),
            "ratio_vs_numpyro_mcmc_run": eps["ppl_sample"] / eps["numpyro_mcmc"],
            "flat_ratio_vs_numpyro_compiled": eps["ppl_run"] / eps["numpyro_compiled"],
            "flat_ratio_vs_blackjax": eps["ppl_run"] / eps["blackjax_user"],
            "ratio_vs_blackjax": eps["ppl_sample"] / eps["blackjax_user"],
            "kernel_ratio_vs_numpyro": eps["ppl_kernel"] / eps["numpyro_kernel"],
            "kernel_ratio_vs_blackjax": eps["ppl_kernel"] / eps["blackjax_kernel"]}


def benchmark_chees(target: Target, n_chains: int, n_warmup: int, n_samples: int, reps: int) -> dict:
    runs = {"ppl_chees": ppl_sample(target, n_chains, n_warmup, n_samples, inference.ChEES()),
            "blackjax_chees": blackjax_chees(target, n_chains, n_warmup, n_samples)}
    result = compare(runs, reps)
    ratio = result["ppl_chees"]["ess_per_second"] / result["blackjax_chees"]["ess_per_second"]
    return {"target": target.name, "n_chains": n_chains, "contenders": result, "ratio_vs_blackjax": ratio}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a measurement)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--chains", default="1,16")
    parser.add_argument("--no-chees", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/nuts.json")
    args = parser.parse_args(argv)
    n_warmup, n_samples = (100, 100) if args.quick else (1000, 1000)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__}, "
                         f"numpyro {numpyro.__version__}", "started": started,
              "load_average_before": os.getloadavg(), "quick": args.quick, "nuts": [], "chees": []}
    for name in args.targets.split(","):
        target = TARGETS[name]()
        for n_chains in map(int, args.chains.split(",")):
            row = benchmark_target(target, n_chains, n_warmup, n_samples, args.reps)
            report["nuts"].append(row)
            ess_per_second = row["contenders"]["ppl_sample"]["ess_per_second"]
            print(f"{name:>13} {n_chains:>2} chains: ESS/s ppl {ess_per_second:.1f} "
                  f"({row['ratio_vs_numpyro']:.2f}x NumPyro, {row['ratio_vs_blackjax']:.2f}x BlackJAX); "
                  f"kernel {row['kernel_ratio_vs_numpyro']:.2f}x / {row['kernel_ratio_vs_blackjax']:.2f}x",
                  flush=True)
        if not args.no_chees:
            row = benchmark_chees(target, 64, n_warmup, n_samples // 2, args.reps)
            report["chees"].append(row)
            print(f"{name:>13} ChEES 64 chains: {row['ratio_vs_blackjax']:.2f}x BlackJAX ChEES", flush=True)
    report["load_average_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
