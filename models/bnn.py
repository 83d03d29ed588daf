"""Bayesian neural network regression on the UCI benchmarks, by SGVB or SG-MCMC.

The model of ZhuSuan's `bnn_vi.py` / `bnn_sgmcmc.py`: one hidden ReLU layer (50 units; 100 for
protein), every weight matrix (bias column included) a stochastic node with `group_ndims=2`, each
layer's pre-activation divided by `sqrt(fan_in + 1)`, and a Gaussian likelihood whose noise
precision `tau` is learned: the latent `log_tau` is the `log` of a `Gamma(1, 0.1)` variable
(`NOISE_PRIOR`, standardised units). The weights have the hierarchical prior of probabilistic
backpropagation (PBP): `w_i ~ N(0, 1 / lambda_i)`, one precision per layer with a `Gamma(6, 6)`
prior (`WEIGHT_PRIOR`; `weight_prior=None` gives ZhuSuan's fixed `N(0, 1)`). PBP's `Gamma(6, 6)`
noise prior is too strong here: it holds the noise standard deviation of the near-noiseless yacht
set at ~0.28 (standardised) against training residuals of ~0.16. Inference (`--method`):

- `sgvb`: a mean-field Gaussian variational net over every latent, trained with
  `inference.elbo(...).sgvb()` and Adam on minibatches;
- `sgld`, `psgld`, `sghmc`, `sgnht`: SG-MCMC chains run by `inference.sgmcmc.sample`, the minibatch
  likelihood rescaled by `N / batch_size` through `model.log_joint`.

Protocol of Hernandez-Lobato and Adams (2015): the published splits (`models.data.uci`), inputs and
targets standardised on the training set, RMSE of the predictive mean and the test log-likelihood
(nats per test point, of the Gaussian mixture predictive) in the target's original units.

Run: `python -m models bnn --dataset boston --method sghmc [--splits K] [--data-dir DIR] [--out DIR]`.

References:
  Hernandez-Lobato and Adams, `Probabilistic Backpropagation for Scalable Learning of Bayesian
  Neural Networks <https://arxiv.org/abs/1502.05336>`_, 2015.
  Chen, Fox and Guestrin, `Stochastic Gradient Hamiltonian Monte Carlo
  <https://arxiv.org/abs/1402.4102>`_, 2014.
  Blundell, Cornebise, Kavukcuoglu and Wierstra, `Weight Uncertainty in Neural Networks
  <https://arxiv.org/abs/1505.05424>`_, 2015.
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
from jax.scipy.special import logsumexp

import inference
import ppl
from inference.deprecation import renamed_arguments
from inference.sgmcmc import PSGLD, SGHMC, SGLD, SGNHT, sample, scaled_log_joint
from models import cli
from models.data import uci
from models.plots import save_figure

__all__ = [
    "METHODS",
    "NOISE_PRIOR",
    "Posterior",
    "WEIGHT_PRIOR",
    "build_bnn",
    "build_mean_field",
    "evaluate",
    "fit",
    "forward",
    "init_latent",
    "predict",
]

METHODS = ("sgvb", "sgld", "psgld", "sghmc", "sgnht")
NOISE_PRIOR = (1.0, 0.1)  # Gamma(shape, rate) on the noise precision (standardised units)
WEIGHT_PRIOR = (6.0, 6.0)  # Gamma(shape, rate) on each layer's weight precision, as in PBP


def _log_tau_prior(noise_prior=NOISE_PRIOR) -> dist.Distribution:
    shape, rate = noise_prior
    return dist.TransformedDistribution(dist.Gamma(shape, rate), dist.transforms.ExpTransform().inv)


def weight_names(layer_sizes) -> list[str]:
    """The names of the weight nodes, one per layer."""
    return [f"w{i}" for i in range(len(layer_sizes) - 1)]


def forward(weights: list[jax.Array], x: jax.Array) -> jax.Array:
    """The network's output.

    Args:
      weights: `w_i` of shape `[*particles, n_out, n_in + 1]` (last column: the bias).
      x: inputs `[n, d]`.

    Returns:
      `[*particles, n]`, the predicted mean (standardised units).
    """
    h = jnp.broadcast_to(x, weights[0].shape[:-2] + x.shape)
    for i, w in enumerate(weights):
        h = jnp.concatenate([h, jnp.ones(h.shape[:-1] + (1,), h.dtype)], -1)
        h = jnp.einsum("...mk,...nk->...nm", w, h) / jnp.sqrt(h.shape[-1])
        if i < len(weights) - 1:
            h = jax.nn.relu(h)
    return h[..., 0]


@ppl.meta_bayesian_net
def build_bnn(x, layer_sizes, noise_prior=NOISE_PRIOR, weight_prior=WEIGHT_PRIOR):
    """The regression BNN: weights `w_i` `[n_out, n_in + 1]`, `log_lambda_i`, `log_tau`, `y` `[n]`.

    Args:
      x: inputs `[n, d]`. Latents may be observed with a leading particle axis `[P, ...]`.
      layer_sizes: `[d, n_hidden, 1]`.
      noise_prior: `(shape, rate)` of the Gamma prior on the noise precision `tau = exp(log_tau)`
        (standardised units).
      weight_prior: None for `N(0, 1)` weights (no `log_lambda_i`); `(shape, rate)` for the
        hierarchical prior of PBP: each layer's weights `w_i ~ N(0, 1 / lambda_i)` with latents
        `log_lambda_i`, the log of a `Gamma(shape, rate)` precision.
    """
    bn = ppl.BayesianNet()
    weights = []
    for i, (name, n_in, n_out) in enumerate(zip(weight_names(layer_sizes), layer_sizes[:-1], layer_sizes[1:],
                                                strict=True)):
        std = 1.0
        if weight_prior is not None:
            log_lambda = bn.stochastic(f"log_lambda{i}", _log_tau_prior(weight_prior))
            std = jnp.exp(-0.5 * log_lambda)[..., None, None]
        weights.append(bn.normal(name, jnp.zeros([n_out, n_in + 1]), std=std, group_ndims=2))
    log_tau = bn.stochastic("log_tau", _log_tau_prior(noise_prior))
    y_mean = bn.deterministic("y_mean", forward(weights, x))
    bn.normal("y", y_mean, std=jnp.exp(-0.5 * log_tau)[..., None], group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_mean_field(params, n_particles):
    """The mean-field Gaussian variational net: `params = {name: (mean, logstd)}` per latent."""
    bn = ppl.BayesianNet()
    for name, (mean, logstd) in params.items():
        bn.normal(name, mean, logstd=logstd, group_ndims=jnp.ndim(mean), n_samples=n_particles)
    return bn


def init_latent(key: jax.Array, layer_sizes, weight_prior=WEIGHT_PRIOR) -> dict[str, jax.Array]:
    """A start: weights `N(0, 1)`, `log_tau = 0` (noise std 1 in standardised units) and, with a
    hierarchical `weight_prior`, `log_lambda_i = 0`."""
    keys = jax.random.split(key, len(layer_sizes) - 1)
    latent = {name: jax.random.normal(k, (n_out, n_in + 1))
              for k, name, n_in, n_out in zip(keys, weight_names(layer_sizes), layer_sizes[:-1],
                                              layer_sizes[1:], strict=True)}
    latent["log_tau"] = jnp.zeros(())
    if weight_prior is not None:
        latent.update({f"log_lambda{i}": jnp.zeros(()) for i in range(len(layer_sizes) - 1)})
    return latent


class Posterior(NamedTuple):
    """Posterior samples: `{name: [n_samples, *latent_shape]}` (numpy) and the layer sizes."""

    samples: dict
    layer_sizes: tuple


@functools.lru_cache(maxsize=16)  # one model_fn per shape: the driver's jit is reused across splits
def _model_fn(layer_sizes, n_train, batch_size, noise_prior, weight_prior):
    def model_fn(batch):
        model = build_bnn(batch["x"], layer_sizes, noise_prior, weight_prior)
        model.log_joint = scaled_log_joint(n_train / batch_size, ["y"])
        return model, {"y": batch["y"]}
    return model_fn


@functools.lru_cache(maxsize=16)
def make_sampler(method: str, n_train: int, learning_rate: float | None = None, friction: float = 0.2):
    """The SG-MCMC sampler for `method`; `learning_rate` (default per method) is divided by `N`.

    The samplers' rates are per step on the full-data log-joint, whose curvature grows with `N`,
    so a rate of `c / N` moves a comparable fraction of the posterior width on any data set.
    `friction` is SGHMC's (other samplers ignore it).
    """
    defaults = {"sgld": 0.5, "psgld": 0.5, "sghmc": 0.03, "sgnht": 0.1}
    if method not in defaults:
        raise ValueError(f"unknown SG-MCMC method {method!r}; choose one of {sorted(defaults)}")
    rate = (defaults[method] if learning_rate is None else learning_rate) / n_train
    return {"sgld": lambda: SGLD(rate), "psgld": lambda: PSGLD(rate / 100),
            "sghmc": lambda: SGHMC(rate, friction=friction, n_iter_resample_v=1000),
            "sgnht": lambda: SGNHT(rate, variance_extra=0.1, tune_rate=1.0)}[method]()


def fit(key: jax.Array, data: uci.Standardized, *, method: str = "sghmc", n_hidden: int = 50,
        n_epochs: int = 200, batch_size: int = 32, n_chains: int = 4, burnin_epochs: int | None = None,
        learning_rate: float | None = None, friction: float = 0.2, noise_prior: tuple = NOISE_PRIOR,
        weight_prior: tuple | None = WEIGHT_PRIOR, n_samples: int = 100,
        progress_bar: bool = False, checkpoint_dir=None, checkpoint_every: int = 1, resume=False,
        **deprecated) -> Posterior:
    """Fits the BNN to standardised training data.

    Args:
      key: a JAX PRNG key.
      data: a `models.data.uci.Standardized` split (only the training part is used).
      method: one of `METHODS`.
      n_hidden: hidden units.
      n_epochs: passes over the training data (SG-MCMC: after `burnin_epochs`; SGVB: all; SGVB
        trains through `inference.fit`).
      batch_size: minibatch size (capped at the training-set size).
      n_chains: SG-MCMC chains (vmapped).
      burnin_epochs: SG-MCMC epochs discarded first (default `epochs // 2`).
      learning_rate: SG-MCMC: the rate times N (see `make_sampler`); SGVB: Adam's rate (0.01).
      friction: SGHMC's friction (momentum decay per step).
      noise_prior: `(shape, rate)` of the Gamma prior on the noise precision (standardised units).
      weight_prior: None (`N(0, 1)` weights) or `(shape, rate)`, a Gamma prior on each layer's weight
        precision (see `build_bnn`).
      n_samples: SGVB: how many weight samples to draw from q for prediction.
      progress_bar: show a progress bar.
      checkpoint_dir, checkpoint_every, resume: SGVB: as in `inference.fit` (a resumed run draws
        the same samples as an uninterrupted one); SG-MCMC methods take none of them.
      **deprecated: `epochs` (use `n_epochs`), `show_progress` (use `progress_bar`), with a
        `DeprecationWarning`.

    Returns:
      A `Posterior` (SG-MCMC: one sample per chain per epoch).

    Raises:
      ValueError: an unknown method or bad sizes, or checkpoint options with an SG-MCMC method.
    """
    renamed = renamed_arguments(deprecated, {"epochs": "n_epochs", "show_progress": "progress_bar"},
                                "bnn.fit")
    n_epochs = renamed.get("n_epochs", n_epochs)
    progress_bar = renamed.get("progress_bar", progress_bar)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    fit_options = {} if checkpoint_dir is None and not resume else \
        {"checkpoint_dir": checkpoint_dir, "checkpoint_every": checkpoint_every, "resume": resume}
    if fit_options and method != "sgvb":
        raise ValueError(f"checkpoint_dir and resume are for method='sgvb' (inference.fit), not {method!r}")
    if n_epochs < 1 or batch_size < 1 or n_chains < 1:
        raise ValueError(f"n_epochs, batch_size and n_chains must be >= 1, got {n_epochs}, {batch_size}, "
                         f"{n_chains}")
    # XLA on CPU compiles multi-dimensional threefry draws (the q net's [10, 50, 14] samples, the
    # chains' momentum and noise) several times slower in the "partitionable" mode (yacht SGHMC:
    # 20 s vs 4 s, SGVB: minutes vs 11 s); the draws keep their distribution.
    with jax.threefry_partitionable(False):
        weight_prior = None if weight_prior is None else tuple(map(float, weight_prior))
        return _fit(key, data, method, n_hidden, n_epochs, batch_size, n_chains, burnin_epochs, learning_rate,
                    friction, tuple(map(float, noise_prior)), weight_prior, n_samples, progress_bar,
                    fit_options)


def _fit(key, data, method, n_hidden, epochs, batch_size, n_chains, burnin_epochs, learning_rate, friction,
         noise_prior, weight_prior, n_samples, show_progress, fit_options):
    x, y = jnp.asarray(data.x_train, jnp.float32), jnp.asarray(data.y_train, jnp.float32)
    n_train = x.shape[0]
    layer_sizes = (x.shape[1], int(n_hidden), 1)
    batch_size = min(int(batch_size), n_train)
    key_init, key_run = jax.random.split(key)
    if method == "sgvb":
        return _fit_sgvb(key_run, x, y, layer_sizes, epochs, batch_size, learning_rate or 0.01, noise_prior,
                         weight_prior, n_samples, show_progress, fit_options)
    sampler = make_sampler(method, n_train, learning_rate, friction)
    init = jax.vmap(lambda k: init_latent(k, layer_sizes, weight_prior))(jax.random.split(key_init, n_chains))
    n_batches = n_train // batch_size
    model_fn = _model_fn(layer_sizes, n_train, batch_size, noise_prior, weight_prior)
    result = sample(key_run, sampler, model_fn, {"x": x, "y": y}, init,
                    batch_size=batch_size, n_epochs=epochs,
                    n_warmup_epochs=epochs // 2 if burnin_epochs is None else burnin_epochs,
                    thinning=n_batches, n_chains=n_chains, is_init_batched=True, progress_bar=show_progress)
    samples = {name: value.reshape((-1,) + value.shape[2:]) for name, value in result.samples.items()}
    return Posterior(samples, layer_sizes)


N_PARTICLES = 10  # SGVB: samples of q per gradient step


@functools.lru_cache(maxsize=16)  # one optimizer and loss per shape, so `fit` reuses its program
def _sgvb_loss(layer_sizes, n_train, batch_size, learning_rate, noise_prior, weight_prior):
    def loss(params, key, batch, state):
        xb, yb = batch
        q = build_mean_field(params, N_PARTICLES).observe(key)
        model = build_bnn(xb, layer_sizes, noise_prior, weight_prior)
        model.log_joint = scaled_log_joint(n_train / batch_size, ["y"])
        cost = jnp.mean(inference.elbo(model, {"y": yb}, variational=q, axis=0).sgvb()) / n_train
        return cost, (state, None)

    return optax.adam(learning_rate), loss


def _fit_sgvb(key, x, y, layer_sizes, epochs, batch_size, learning_rate, noise_prior, weight_prior, n_samples,
              show_progress, fit_options):
    shapes = {name: (n_out, n_in + 1) for name, n_in, n_out in
              zip(weight_names(layer_sizes), layer_sizes[:-1], layer_sizes[1:], strict=True)}
    key_init, key_train, key_draw = jax.random.split(key, 3)
    params = {name: (0.1 * jax.random.normal(jax.random.fold_in(key_init, i), shape), jnp.full(shape, -3.0))
              for i, (name, shape) in enumerate(shapes.items())}
    params["log_tau"] = (jnp.zeros(()), jnp.full((), -3.0))
    if weight_prior is not None:
        params.update({f"log_lambda{i}": (jnp.zeros(()), jnp.full((), -3.0)) for i in range(len(shapes))})
    optimizer, loss = _sgvb_loss(layer_sizes, x.shape[0], batch_size, learning_rate, noise_prior,
                                 weight_prior)
    params = inference.fit(key_train, loss, params, optimizer, (x, y), n_epochs=epochs, batch_size=batch_size,
                           progress_bar=show_progress, **fit_options).params
    q = build_mean_field(params, n_samples).observe(key_draw)
    samples = {name: np.asarray(q[name].value) for name in params}
    return Posterior(samples, layer_sizes)


def predict(posterior: Posterior, x) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample predictive means `[n_samples, n]` and noise std `[n_samples]` (standardised)."""
    weights = [jnp.asarray(posterior.samples[name]) for name in weight_names(posterior.layer_sizes)]
    y_mean = jax.jit(forward)(weights, jnp.asarray(x, jnp.float32))
    return np.asarray(y_mean), np.asarray(jnp.exp(-0.5 * jnp.asarray(posterior.samples["log_tau"])))


def evaluate(posterior: Posterior, data: uci.Standardized) -> dict[str, float]:
    """Test RMSE and log-likelihood in the target's original units.

    The predictive is the mixture `(1/S) sum_s N(y; mu_s, sigma_s^2)` over the S posterior samples;
    RMSE uses its mean. In original units `mu * y_std + y_mean`, `sigma * y_std`.

    Returns:
      `{"rmse": ..., "test_log_likelihood": ...}` (target units; nats per test point).
    """
    y_mean, noise_std = predict(posterior, data.x_test)
    mu = y_mean * data.y_std + data.y_mean
    sigma = noise_std[:, None] * data.y_std
    y = data.y_test * data.y_std + data.y_mean
    rmse = float(np.sqrt(np.mean((mu.mean(0) - y) ** 2)))
    log_probs = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((y - mu) / sigma) ** 2
    log_likelihood = float(np.mean(logsumexp(log_probs, axis=0) - np.log(mu.shape[0])))
    return {"rmse": rmse, "test_log_likelihood": log_likelihood}


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the BNN's flags to its sub-parser (`python -m models bnn --help`)."""
    cli.add_common_arguments(parser, name="bnn", epochs=200, dataset="boston",
                             datasets=sorted(uci.UCI_DATASETS), method="sghmc", methods=METHODS, splits=5)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="minibatch size")
    parser.add_argument("--n-chains", type=cli.positive_int, default=4, help="SG-MCMC chains")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="SG-MCMC: rate x N (default per method); SGVB: Adam's rate (0.01)")
    parser.add_argument("--hidden", type=cli.positive_int, default=None,
                        help="hidden units (default: the data set's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    cli.add_checkpoint_arguments(parser)   # SGVB: one checkpoint directory per split


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Refuses `--n-chains` with `--method sgvb` (one variational posterior, no chains), and the
    checkpoint flags with the SG-MCMC methods (only SGVB trains through `inference.fit`)."""
    sg_mcmc = tuple(m for m in METHODS if m != "sgvb")
    cli.reject_unused_flags(given, args.method, {"n_chains": sg_mcmc, "checkpoint_every": ("sgvb",),
                                                 "resume": ("sgvb",)})


def run(args: argparse.Namespace) -> dict:
    """Runs `--splits` splits and returns the metrics (also written to `--out/metrics.json`)."""
    data_dir = cli.data_dir_from(args)
    total = uci.n_splits(args.dataset, data_dir)
    n_splits = min(args.splits, total)
    out = cli.output_dir(args)
    per_split, start = [], time.time()
    for k in range(n_splits):
        split = uci.load_uci(args.dataset, data_dir, split=k)
        data = uci.standardize(split)
        posterior = fit(jax.random.fold_in(jax.random.key(args.seed), k), data, method=args.method,
                        n_hidden=args.hidden or split.n_hidden, n_epochs=args.epochs,
                        batch_size=args.batch_size, n_chains=args.n_chains, learning_rate=args.learning_rate,
                        progress_bar=not args.quiet, **cli.checkpoint_options(args, out, subdir=f"split_{k}"))
        per_split.append(evaluate(posterior, data))
        if not args.quiet:
            last = per_split[-1]
            print(f"split {k}: rmse {last['rmse']:.3f}  test ll {last['test_log_likelihood']:.3f}")
        if k == 0:
            _plot(posterior, data, out / "predictive.png", f"{args.dataset} split 0, {args.method}")
    metrics = {name: cli.split_summary([m[name] for m in per_split])
               for name in ("rmse", "test_log_likelihood")}
    metrics.update(seconds=time.time() - start, dataset=args.dataset, method=args.method, splits=n_splits,
                   epochs=args.epochs, batch_size=args.batch_size, n_chains=args.n_chains,
                   data="packaged mlxtend Boston housing" if data_dir is None else str(data_dir))
    cli.write_metrics(out, metrics)
    return metrics


def main(args: argparse.Namespace) -> int:
    """Runs the BNN on the chosen data set and splits; writes metrics.json and predictive.png."""
    metrics = run(args)
    rmse, ll = metrics["rmse"], metrics["test_log_likelihood"]
    print(f"{args.dataset} {args.method}: rmse {rmse['mean']:.3f} +- {rmse['stderr']:.3f}, test ll "
          f"{ll['mean']:.3f} +- {ll['stderr']:.3f} ({metrics['splits']} splits, {metrics['seconds']:.0f} s); "
          f"wrote {args.out}/metrics.json")
    return 0


def _plot(posterior: Posterior, data: uci.Standardized, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_mean, noise_std = predict(posterior, data.x_test)
    mu = y_mean * data.y_std + data.y_mean
    mean = mu.mean(0)
    std = np.sqrt(mu.var(0) + np.mean((noise_std * data.y_std) ** 2))
    y = data.y_test * data.y_std + data.y_mean
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.errorbar(y, mean, yerr=2 * std, fmt="o", ms=3, alpha=0.6, label="predictive mean +- 2 sd")
    lims = [min(y.min(), mean.min()), max(y.max(), mean.max())]
    ax.plot(lims, lims, "k--", lw=1, label="y = prediction")
    ax.set(xlabel="test target", ylabel="prediction", title=title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
