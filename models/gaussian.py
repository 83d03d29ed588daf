"""Toy multivariate Gaussian sampled with NUTS (or HMC, ChEES; ZhuSuan's toy example): a posterior
known exactly.

The target is x ~ N(mean, cov) in d dimensions with a random correlated covariance (no
observations), so every moment is known: the run reports the z-scores of the sample means and
variances against the exact ones (Monte Carlo standard errors from the ESS), the ESS per second and
split R-hat, writes `metrics.json`, trace plots and histograms with the exact marginals overlaid.

Run it with `python -m models gaussian` (see `add_arguments` for the flags).

References:
  Shi et al., `ZhuSuan <https://arxiv.org/abs/1709.05870>`_, 2017 (`examples/toy_examples/gaussian.py`);
  Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011, section 5.3.3.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from inference.diagnostics import effective_sample_size, rhat
from inference.hmc import HMC, NUTS, ChEES
from models import cli
from models.plots import plot_histograms, plot_traces

__all__ = ["build_gaussian", "make_target", "add_arguments", "main"]


@ppl.meta_bayesian_net
def build_gaussian(mean, cov_tril):
    """x ~ N(mean, cov_tril cov_tril^T), event shape `[d]`, and the deterministic node
    "squared_deviation" = (x - mean)^2, `[d]`, whose expectation is the marginal variances (the
    run checks the sampler's variances with it; `sample` returns it beside x).

    Args:
      mean: `[d]`; cov_tril: `[d, d]`, lower-triangular Cholesky factor of the covariance.

    Returns:
      A `ppl.MetaBayesianNet` with latent "x" `[d]` and deterministic "squared_deviation" `[d]`.
    """
    bn = ppl.BayesianNet()
    x = bn.multivariate_normal_cholesky("x", mean, cov_tril)
    bn.deterministic("squared_deviation", (x - mean) ** 2)
    return bn


def make_target(seed: int, dim: int):
    """A random mean `[d]` and covariance `[d, d]` (scales 0.1..3, correlations from a random basis)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scales = np.geomspace(0.1, 3.0, dim)
    cov = basis @ np.diag(scales ** 2) @ basis.T
    return rng.normal(size=dim).astype(np.float32), cov.astype(np.float32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds this model's flags to its sub-parser (`python -m models gaussian --help`)."""
    cli.add_common_arguments(parser, name="gaussian", method="nuts", methods=["nuts", "hmc", "chees"],
                             data_dir=False)
    parser.add_argument("--dim", type=cli.positive_int, default=10, help="dimension of the Gaussian")
    parser.add_argument("--chains", type=cli.positive_int, default=4)
    parser.add_argument("--samples", type=cli.positive_int, default=1000)
    parser.add_argument("--warmup", type=cli.positive_int, default=1000)
    parser.add_argument("--leapfrogs", type=cli.positive_int, default=10,
                        help="leapfrog steps per transition (--method hmc)")
    parser.add_argument("--dense-mass", action="store_true", help="adapt a dense mass matrix")


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Refuses `--leapfrogs` unless `--method hmc` (NUTS and ChEES choose their trajectory lengths)."""
    cli.reject_unused_flags(given, args.method, {"leapfrogs": ("hmc",)})


def main(args: argparse.Namespace) -> int:
    """Samples the Gaussian (NUTS by default) and writes metrics.json and the plots."""
    out = cli.output_dir(args)
    mean, cov = make_target(args.seed, args.dim)
    meta_bn = build_gaussian(jnp.asarray(mean), jnp.asarray(np.linalg.cholesky(cov)))
    if args.method == "nuts":
        sampler = NUTS(step_size=0.1, dense_mass=args.dense_mass)
    elif args.method == "chees":
        sampler = ChEES(step_size=0.1)
    else:
        sampler = HMC(step_size=0.1, n_leapfrogs=args.leapfrogs, adaptation="window",
                      dense_mass=args.dense_mass)
    key_first, key_run = jax.random.split(jax.random.key(args.seed))
    init = {"x": jnp.zeros((args.chains, args.dim))}
    run = lambda key: jax.block_until_ready(sampler.sample(key, meta_bn, {}, init, n_samples=args.samples,
                                                           n_warmup=args.warmup, n_chains=args.chains))
    start = time.perf_counter()
    run(key_first)                    # compiles; the second call reuses the program
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    samples, info = run(key_run)
    seconds = time.perf_counter() - start
    compile_seconds = max(first_seconds - seconds, 0.0)
    x = np.asarray(samples["x"], np.float64)
    var = np.diag(cov).astype(np.float64)
    mean_z = (x.mean((0, 1)) - mean) / (x.std((0, 1)) / np.sqrt(effective_sample_size(x)))
    squared = np.asarray(samples["squared_deviation"], np.float64)     # (x - mean)^2, computed in the run
    var_z = (squared.mean((0, 1)) - var) / (squared.std((0, 1)) / np.sqrt(effective_sample_size(squared)))
    ess = effective_sample_size(x)
    metrics = {
        "mean_z": mean_z, "variance_z": var_z,
        "max_abs_z": float(max(np.abs(mean_z).max(), np.abs(var_z).max())),
        "mean_error": np.abs(x.mean((0, 1)) - mean), "sd_ratio": x.std((0, 1)) / np.sqrt(var),
        "ess": ess, "min_ess": float(ess.min()), "max_r_hat": float(rhat(x).max()),
        "ess_per_second": float(ess.min() / seconds), "seconds": seconds, "compile_seconds": compile_seconds,
        "acceptance_rate": float(np.mean(info.acceptance_rate)),
        "n_divergences": int(np.sum(info.n_divergences)),
        "config": {"method": args.method, "dim": args.dim, "chains": args.chains, "samples": args.samples,
                   "warmup": args.warmup, "leapfrogs": args.leapfrogs, "dense_mass": args.dense_mass},
    }
    cli.write_metrics(out, metrics)
    shown = {f"x[{i}]": x[..., i] for i in range(min(4, args.dim))}
    sds = np.sqrt(var)
    densities = [lambda g, m=mean[i], s=sds[i]: np.exp(-0.5 * ((g - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))
                 for i in range(len(shown))]
    plot_traces(out / "trace.png", shown)
    plot_histograms(out / "posterior.png", shown, densities)
    print(f"gaussian ({args.method}): max |z| {metrics['max_abs_z']:.2f}, min ESS {metrics['min_ess']:.0f}, "
          f"ESS/s {metrics['ess_per_second']:.1f}, max R-hat {metrics['max_r_hat']:.3f} -> {out}")
    return 0
