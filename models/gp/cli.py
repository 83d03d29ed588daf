"""Gaussian-process regression: sparse variational GP on the UCI splits, or an exact GP (Mauna Loa CO2).

`python -m models gp --dataset boston [--method svgp|exact] [--inducing 100] [--splits K]` fits each
published split and writes `metrics.json` with `rmse` and `nll` (original target units, per test
point) as `{"mean", "stderr", "per_split"}`. `--dataset co2` fits an exact GP with a composite
kernel (long-term trend + decaying yearly cycle + medium-term irregularities) to the monthly Mauna
Loa CO2 record up to 1990 by type-II maximum likelihood, predicts 1991-2001, and plots the mean and
the 95% interval (`co2.png`).

The model code lives in `models.gp.exact` (exact GP), `models.gp.svgp` (SVGP) and `models.gp.kernels`.

References:
  Hensman, Fusi and Lawrence, `Gaussian Processes for Big Data <https://arxiv.org/abs/1309.6835>`_, 2013.
  Rasmussen and Williams, `Gaussian Processes for Machine Learning
  <https://gaussianprocess.org/gpml/chapters/>`_, section 5.4.3 (the CO2 kernel), 2006.
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from models import cli
from models.data import uci
from models.data.co2 import load_co2
from models.gp import exact as gp_exact
from models.gp import kernels, svgp
from models.plots import save_figure

__all__ = ["CO2Params", "add_arguments", "co2_kernel", "fit_uci_split", "gaussian_nll", "load_co2", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `gp` command's flags."""
    cli.add_common_arguments(parser, name="gp", epochs=5000, dataset="boston",
                             datasets=sorted(uci.UCI_DATASETS) + ["co2"], method="svgp",
                             methods=["svgp", "exact"], splits=20)
    parser.add_argument("--inducing", type=cli.positive_int, default=100, help="SVGP inducing points")
    parser.add_argument("--batch-size", type=cli.positive_int, default=5000, help="SVGP minibatch size")
    parser.add_argument("--n-particles", "--particles", dest="n_particles", type=cli.positive_int, default=10,
                        help="SVGP samples of q per step")
    parser.add_argument("--learning-rate", type=float, default=0.01, help="Adam step size")
    parser.add_argument("--kernel", default="rbf", choices=sorted(gp_exact.STATIONARY_KERNELS))
    cli.add_checkpoint_arguments(parser)   # one checkpoint directory per UCI split


def gaussian_nll(y: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> float:
    """Mean negative log-density (nats per point) of `y` under independent N(mean, variance), all `[n]`."""
    return float(np.mean(0.5 * np.log(2 * np.pi * variance) + 0.5 * (y - mean) ** 2 / variance))


def fit_uci_split(key: jax.Array, split: uci.UCISplit, *, method: str = "svgp", kernel: str = "rbf",
                  n_epochs: int = 5000, inducing: int = 100, batch_size: int = 5000, n_particles: int = 10,
                  learning_rate: float = 0.01, progress_bar: bool = False, **fit_options) -> dict:
    """Fits one UCI split with `method` and returns its `rmse` and `nll` in original units.

    Args:
      key: a JAX PRNG key.
      split: a `models.data.uci.UCISplit`.
      method: "svgp" or "exact".
      kernel: a stationary kernel name (`models.gp.exact.STATIONARY_KERNELS`).
      n_epochs: SVGP passes over the data (minibatches of `batch_size`), or the exact GP's Adam steps.
      inducing: SVGP inducing points (capped at the training size).
      batch_size: SVGP minibatch size (capped at the training size).
      n_particles: SVGP samples of q per step.
      learning_rate: Adam's step size.
      progress_bar: show the SVGP's training bar.
      **fit_options: passed to `inference.fit` (`checkpoint_dir`, `checkpoint_every`, `resume`).

    Returns:
      `{"rmse": float, "nll": float, "seconds": float}`.

    Raises:
      ValueError: an unknown method, or a count below 1.
    """
    if method not in ("svgp", "exact"):
        raise ValueError(f"fit_uci_split: method must be 'svgp' or 'exact', got {method!r}")
    for name, value in (("n_epochs", n_epochs), ("inducing", inducing), ("batch_size", batch_size),
                        ("n_particles", n_particles)):
        if value < 1:
            raise ValueError(f"fit_uci_split: {name} must be >= 1, got {value}")
    data = uci.standardize(split)
    x, y = jnp.asarray(data.x_train, jnp.float32), jnp.asarray(data.y_train, jnp.float32)
    x_test = jnp.asarray(data.x_test, jnp.float32)
    hyper = gp_exact.init_params(x.shape[1], lengthscale=float(np.sqrt(x.shape[1])), noise_variance=0.1)
    start = time.perf_counter()
    if method == "exact":
        hyper = gp_exact.fit_exact(x, y, kernel, hyper, n_steps=n_epochs, learning_rate=learning_rate,
                                   progress_bar=progress_bar, **fit_options).params
        mean, variance = gp_exact.exact_posterior(hyper, x, y, x_test, kernel)
        variance = variance + jnp.exp(hyper.log_noise_variance)
    else:
        key_init, key_fit = jax.random.split(key)
        params = svgp.init_svgp_params(key_init, x, min(inducing, x.shape[0]), hyper)
        params = svgp.fit_svgp(key_fit, params, x, y, kernel, n_epochs=n_epochs, batch_size=batch_size,
                               n_particles=n_particles, learning_rate=learning_rate,
                               progress_bar=progress_bar, **fit_options).params
        mean, variance = svgp.predict_svgp(params, x_test, kernel)
    mean, variance = jax.block_until_ready((mean, variance))
    seconds = time.perf_counter() - start
    mean = data.unstandardize_y(np.asarray(mean, np.float64))
    variance = np.asarray(variance, np.float64) * data.y_std**2
    return {"rmse": float(np.sqrt(np.mean((mean - split.y_test) ** 2))),
            "nll": gaussian_nll(split.y_test, mean, variance), "seconds": seconds}


class CO2Params(NamedTuple):
    """Log-hyperparameters of the CO2 kernel (times in years, CO2 standardised)."""

    log_trend: jax.Array           # [2]: variance, lengthscale of the long-term RBF
    log_seasonal: jax.Array        # [4]: variance, decay lengthscale, periodic lengthscale, period
    log_irregular: jax.Array       # [2]: variance, lengthscale of the medium-term Matern 3/2
    log_noise_variance: jax.Array  # []


def co2_kernel(params: CO2Params) -> kernels.KernelFn:
    """RBF trend + RBF x periodic season + Matern 3/2 irregularities (cf. Rasmussen and Williams 5.4.3)."""
    trend, season, irregular = (jnp.exp(p) for p in params[:3])
    return kernels.add(
        functools.partial(kernels.rbf, variance=trend[0], lengthscale=trend[1]),
        kernels.multiply(functools.partial(kernels.rbf, variance=season[0], lengthscale=season[1]),
                         functools.partial(kernels.periodic, lengthscale=season[2], period=season[3])),
        functools.partial(kernels.matern32, variance=irregular[0], lengthscale=irregular[1]))


def _run_co2(args, out) -> dict:
    years, ppm = load_co2()
    is_train = years < 1991
    offset, y_mean, y_std = years[0], ppm[is_train].mean(), ppm[is_train].std()
    x = jnp.asarray(years - offset, jnp.float32)[:, None]
    y = jnp.asarray((ppm - y_mean) / y_std, jnp.float32)
    start = CO2Params(jnp.log(jnp.array([1.0, 50.0])), jnp.log(jnp.array([0.01, 100.0, 1.0, 1.0])),
                      jnp.log(jnp.array([0.01, 1.0])), jnp.log(jnp.array(0.001)))
    begin = time.perf_counter()
    result = gp_exact.fit_exact(x[is_train], y[is_train], co2_kernel, start, n_steps=min(args.epochs, 1000),
                                learning_rate=0.02, **cli.checkpoint_options(args, out))
    params, trace = result.params, result.history["log_marginal_likelihood"]
    x_plot = jnp.linspace(0.0, 2005.0 - offset, 600)[:, None]
    mean, var = gp_exact.exact_posterior(params, x[is_train], y[is_train],
                                         jnp.concatenate([x[~is_train], x_plot]), co2_kernel)
    var = var + jnp.exp(params.log_noise_variance)
    n_test = int((~is_train).sum())
    test_mean = np.asarray(mean[:n_test]) * y_std + y_mean
    test_var = np.asarray(var[:n_test]) * y_std**2
    metrics = {"rmse": float(np.sqrt(np.mean((test_mean - ppm[~is_train]) ** 2))),
               "nll": gaussian_nll(ppm[~is_train], test_mean, test_var),
               "train_log_marginal_likelihood": float(trace[-1]),
               "period_years": float(jnp.exp(params.log_seasonal[3])),
               "seconds": time.perf_counter() - begin, "n_train": int(is_train.sum()), "n_test": n_test}
    _plot_co2(out / "co2.png", years, ppm, is_train, np.asarray(x_plot[:, 0]) + offset,
              np.asarray(mean[n_test:]) * y_std + y_mean, np.sqrt(np.asarray(var[n_test:])) * y_std)
    return metrics


def _plot_co2(path, years, ppm, is_train, grid, mean, std):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(years[is_train], ppm[is_train], "k.", ms=2, label="train (monthly means)")
    ax.plot(years[~is_train], ppm[~is_train], "r.", ms=2, label="held out (1991-2001)")
    ax.plot(grid, mean, "b-", lw=1, label="GP posterior mean")
    ax.fill_between(grid, mean - 1.96 * std, mean + 1.96 * std, color="b", alpha=0.2, label="95% interval")
    ax.set_xlabel("year")
    ax.set_ylabel("CO2 (ppm)")
    ax.set_title("Mauna Loa CO2: exact GP, type-II maximum likelihood")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Refuses SVGP-only flags with `--method exact` or `--dataset co2` (an exact GP)."""
    method = "exact" if args.dataset == "co2" else args.method
    cli.reject_unused_flags(given, method, {"inducing": ("svgp",), "batch_size": ("svgp",),
                                            "n_particles": ("svgp",)}, method_flag="(an exact GP) --method")


def main(args: argparse.Namespace) -> int:
    """Runs the `gp` command: fits, prints and writes `metrics.json` (and `co2.png` for co2)."""
    out = cli.output_dir(args)
    if args.dataset == "co2":
        metrics = _run_co2(args, out)
        print(f"co2: test rmse {metrics['rmse']:.3f} ppm, nll {metrics['nll']:.3f}")
        cli.write_metrics(out, {"dataset": "co2", "method": "exact", **metrics})
        return 0
    data_dir = cli.data_dir_from(args)
    total = uci.n_splits(args.dataset, data_dir)
    n = min(args.splits, total)
    if n < 1:
        raise ValueError(f"--splits must be at least 1, got {args.splits}")
    keys = jax.random.split(jax.random.key(args.seed), n)
    results = []
    for k in cli.progress(range(n), desc=f"gp {args.dataset}"):
        result = fit_uci_split(keys[k], uci.load_uci(args.dataset, data_dir, split=k), method=args.method,
                               kernel=args.kernel, n_epochs=args.epochs, inducing=args.inducing,
                               batch_size=args.batch_size, n_particles=args.n_particles,
                               learning_rate=args.learning_rate,
                               **cli.checkpoint_options(args, out, subdir=f"split_{k}"))
        print(f"split {k}: rmse {result['rmse']:.3f}, nll {result['nll']:.3f} ({result['seconds']:.1f} s)")
        results.append(result)
    metrics = {name: cli.split_summary([r[name] for r in results]) for name in ("rmse", "nll", "seconds")}
    metrics.update(dataset=args.dataset, method=args.method, kernel=args.kernel, inducing=args.inducing,
                   epochs=args.epochs, splits=n)
    print(f"{args.dataset}: rmse {metrics['rmse']['mean']:.3f} ({metrics['rmse']['stderr']:.3f}), "
          f"nll {metrics['nll']['mean']:.3f} ({metrics['nll']['stderr']:.3f})")
    cli.write_metrics(out, metrics)
    return 0
