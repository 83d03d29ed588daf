"""Bayesian logistic regression with NUTS (or HMC, ChEES) on scikit-learn's breast cancer set.

The model: w ~ N(0, alpha^2 I) over the standardised features plus an intercept, y ~ Bernoulli(
logits = x w), ZhuSuan's HMC example. Parallel chains of `--method nuts` (the default: no
trajectory length to tune), `hmc` (ZhuSuan's sampler, `--leapfrogs` steps) or `chees` (many
chains in lockstep), all with step-size and mass adaptation; reports posterior means, ESS per
second, split R-hat and the test accuracy of the posterior predictive mean, writes
`metrics.json`, trace plots and posterior histograms.

Run it with `python -m models blr` (see `add_arguments` for the flags).

References:
  Shi et al., `ZhuSuan: A Library for Bayesian Deep Learning <https://arxiv.org/abs/1709.05870>`_,
  2017 (the Bayesian logistic regression example of its HMC tutorial);
  Neal, `MCMC using Hamiltonian dynamics <https://arxiv.org/abs/1206.1901>`_, 2011.
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import ppl
from inference.diagnostics import effective_sample_size, rhat
from inference.hmc import HMC, NUTS, ChEES, HMCSampleInfo
from models import cli
from models.data.breast_cancer import load_breast_cancer
from models.plots import plot_histograms, plot_traces

__all__ = ["METHODS", "build_blr", "load_breast_cancer", "make_sampler", "fit", "accuracy", "FitResult",
           "add_arguments", "main"]

METHODS = ("nuts", "hmc", "chees")


def build_blr(x, alpha=1.0, x_test=None) -> ppl.MetaBayesianNet:
    """w ~ N(0, alpha^2) of shape `[d]`; y ~ Bernoulli(logits = x @ w) of shape `[n]`.

    With `x_test`, the model also has a deterministic node "test_probs" = sigmoid(x_test @ w),
    shape `[m]`: the predictive probability of y = 1 at each held-out input, which `sample`
    returns with the draws (`[n_chains, n_samples, m]`), computed inside the compiled run.

    The features are copied once, here, into feature-major order (`x.T`, shape `[d, n]`, each
    feature contiguous) and the logits computed as `w @ x.T`. On CPU, XLA's matrix-vector products
    with a tall row-major `[n, d]` matrix and small d are about 3x slower than with its transpose
    (measured on 581,012 x 55: 73 ms vs 20 ms per log-likelihood gradient, `benchmarks/README.md`);
    the backward product `r @ x` is the worst. The copy costs the memory of `x` once more.

    Args:
      x: features `[n, d]` (include a column of ones for an intercept).
      alpha: prior standard deviation of each weight.
      x_test: optional held-out features `[m, d]`.

    Returns:
      A `ppl.MetaBayesianNet` with latent "w" `[d]`, observable "y" `[n]` and, with `x_test`,
      deterministic "test_probs" `[m]`.

    Raises:
      ValueError: `x` is not 2-D, or `x_test` is not `[m, d]` with x's d.
    """
    if jnp.ndim(x) != 2:
        raise ValueError(f"build_blr: x must have shape [n, d], got {jnp.shape(x)}")
    if x_test is None:
        return _blr_feature_major(jnp.transpose(jnp.asarray(x)), alpha)
    if jnp.ndim(x_test) != 2 or jnp.shape(x_test)[1] != jnp.shape(x)[1]:
        raise ValueError(f"build_blr: x_test must have shape [m, {jnp.shape(x)[1]}] like x {jnp.shape(x)}, "
                         f"got {jnp.shape(x_test)}")
    return _blr_with_test(jnp.transpose(jnp.asarray(x)), alpha, jnp.transpose(jnp.asarray(x_test)))


def _blr(x_t, alpha) -> tuple[ppl.BayesianNet, jax.Array]:
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x_t.shape[0]), std=alpha, group_ndims=1)
    bn.bernoulli("y", logits=w @ x_t, group_ndims=1)
    return bn, w


@ppl.meta_bayesian_net
def _blr_feature_major(x_t, alpha):
    """The BLR model on features `x_t` of shape `[d, n]`."""
    return _blr(x_t, alpha)[0]


@ppl.meta_bayesian_net
def _blr_with_test(x_t, alpha, x_test_t):
    """The BLR model plus "test_probs" = sigmoid(w @ x_test_t) for held-out features `[d, m]`."""
    bn, w = _blr(x_t, alpha)
    bn.deterministic("test_probs", jax.nn.sigmoid(w @ x_test_t))
    return bn


class FitResult(NamedTuple):
    """Samples `{"w": [n_chains, n_samples, d]}` (and `"test_probs": [n_chains, n_samples, m]` when
    `fit` was given `x_test`), the `HMCSampleInfo`, compile and sampling seconds."""

    samples: dict
    info: HMCSampleInfo
    compile_seconds: float
    sample_seconds: float


def make_sampler(method: str = "nuts", n_leapfrogs: int = 10, step_size: float = 0.05):
    """The adapted sampler for `method` ("nuts", "hmc" or "chees").

    Raises:
      ValueError: an unknown method.
    """
    if method == "nuts":
        return NUTS(step_size=step_size)
    if method == "hmc":
        return HMC(step_size=step_size, n_leapfrogs=n_leapfrogs, adaptation="window")
    if method == "chees":
        return ChEES(step_size=step_size)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def fit(key, x, y, alpha=1.0, n_chains=4, n_samples=1000, n_warmup=1000, n_leapfrogs=10,
        step_size=0.05, method: str = "nuts", x_test=None) -> FitResult:
    """Samples the BLR posterior; times compilation and sampling separately.

    `sample` is called twice with the same shapes, as a user re-running it would: the first call
    compiles the whole run, the second reuses the program; `sample_seconds` is the second call,
    `compile_seconds` the difference.

    Args:
      key: PRNG key.
      x, y: features `[n, d]` and labels `[n]`.
      alpha: prior sd of the weights.
      n_chains, n_samples, n_warmup: sizes per chain.
      n_leapfrogs: HMC only.
      step_size: the starting step size (adapted).
      method: "nuts" (default), "hmc" or "chees".
      x_test: optional held-out features `[m, d]`; the samples then include the deterministic
        node "test_probs" (see `build_blr`).

    Returns:
      A `FitResult` of the second call.
    """
    sampler = make_sampler(method, n_leapfrogs, step_size)
    model, observed = build_blr(jnp.asarray(x), alpha, x_test), {"y": jnp.asarray(y)}
    key_init, key_first, key_run = jax.random.split(key, 3)
    init = {"w": 0.1 * jax.random.normal(key_init, (n_chains, x.shape[1]))}
    run = lambda k: jax.block_until_ready(sampler.sample(k, model, observed, init, n_samples=n_samples,
                                                         n_warmup=n_warmup, n_chains=n_chains))
    start = time.perf_counter()
    run(key_first)
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    samples, info = run(key_run)
    seconds = time.perf_counter() - start
    return FitResult(samples, info, max(first_seconds - seconds, 0.0), seconds)


def accuracy(test_probs, y) -> float:
    """Test accuracy of the posterior predictive mean p(y = 1 | x) > 1/2.

    Args:
      test_probs: `[n_chains, n_samples, m]`, the "test_probs" node of each draw (`build_blr`'s
        `x_test`); y: `[m]` in {0, 1}.
    """
    probs = np.mean(np.asarray(test_probs), axis=(0, 1))
    return float(np.mean((probs > 0.5) == (np.asarray(y) > 0.5)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds this model's flags to its sub-parser (`python -m models blr --help`)."""
    cli.add_common_arguments(parser, name="blr", dataset="breast_cancer", datasets=["breast_cancer"],
                             method="nuts", methods=list(METHODS), data_dir=False)
    parser.add_argument("--chains", type=cli.positive_int, default=4, help="parallel chains")
    parser.add_argument("--samples", type=cli.positive_int, default=1000, help="draws per chain after warmup")
    parser.add_argument("--warmup", type=cli.positive_int, default=1000,
                        help="adaptation iterations per chain")
    parser.add_argument("--leapfrogs", type=cli.positive_int, default=10,
                        help="leapfrog steps per transition (--method hmc)")
    parser.add_argument("--alpha", type=float, default=1.0, help="prior sd of the weights")


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Refuses `--leapfrogs` unless `--method hmc` (NUTS and ChEES choose their trajectory lengths)."""
    cli.reject_unused_flags(given, args.method, {"leapfrogs": ("hmc",)})


def main(args: argparse.Namespace) -> int:
    """Samples the logistic regression posterior; writes metrics.json and the plots."""
    out = cli.output_dir(args)
    x_train, y_train, x_test, y_test = load_breast_cancer(args.seed)
    result = fit(jax.random.key(args.seed), x_train, y_train, args.alpha, args.chains, args.samples,
                 args.warmup, args.leapfrogs, method=args.method, x_test=x_test)
    w = np.asarray(result.samples["w"])
    ess, r_hat = effective_sample_size(w), rhat(w)
    metrics = {
        "accuracy": accuracy(result.samples["test_probs"], y_test),
        "posterior_mean": w.mean((0, 1)), "posterior_sd": w.std((0, 1)),
        "ess": ess, "min_ess": float(ess.min()), "max_r_hat": float(r_hat.max()), "r_hat": r_hat,
        "ess_per_second": float(ess.min() / result.sample_seconds),
        "seconds": result.sample_seconds, "compile_seconds": result.compile_seconds,
        "acceptance_rate": float(np.mean(result.info.acceptance_rate)),
        "n_divergences": int(np.sum(result.info.n_divergences)),
        "step_size": result.info.step_size,
        "mean_leapfrogs_per_draw": float(np.mean(result.info.n_leapfrogs)),
        "ess_per_gradient": float(ess.min() / np.sum(result.info.n_leapfrogs)),
        "config": {"method": args.method, "chains": args.chains, "samples": args.samples,
                   "warmup": args.warmup, "leapfrogs": args.leapfrogs, "alpha": args.alpha,
                   "n_train": len(y_train), "n_test": len(y_test)},
    }
    cli.write_metrics(out, metrics)
    shown = {f"w[{i}]": w[..., i] for i in range(min(4, w.shape[-1]))} | {"w[intercept]": w[..., -1]}
    plot_traces(out / "trace.png", shown)
    plot_histograms(out / "posterior.png", shown)
    print(f"blr ({args.method}): test accuracy {metrics['accuracy']:.4f}, min ESS {metrics['min_ess']:.0f}, "
          f"ESS/s {metrics['ess_per_second']:.1f}, max R-hat {metrics['max_r_hat']:.3f}, "
          f"{metrics['n_divergences']} divergences -> {out}")
    return 0
