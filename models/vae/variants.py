"""What the VAE variants (`models.vae.discrete`, `models.vae.flow`) share: data, training loop, outputs.

The Gaussian VAE (`models.vae.model`) keeps its own loop; the variants differ from it in what a step
carries (the REINFORCE moving-average state) and in how q is built, so their loss functions have
one signature, `loss_fn(params, key, x, state) -> (cost, (state, elbo))`, and everything else here
is written once for both: the scanned epoch, the fit loop with a per-epoch test ELBO, chunked
evaluation, and the command line's data preparation and output files (`metrics.json`,
`samples.png`, `reconstructions.png`, `elbo.png`, as `python -m models vae` writes them).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models import cli
from models.data import mnist
from models.vae.plots import plot_elbo, plot_reconstructions, plot_samples

__all__ = ["VariantFit", "PreparedRun", "evaluate_in_chunks", "fit", "make_epoch", "prepare", "write_outputs"]

LossFn = Callable[[dict, jax.Array, jax.Array, Any], tuple[jax.Array, tuple[Any, jax.Array]]]


def make_epoch(loss_fn: LossFn, optimizer: optax.GradientTransformation, batch_size: int = 128,
               is_binarized: bool = False):
    """A jitted pass: `epoch(params, opt_state, state, key, x_train) -> (params, opt_state, state, elbos)`.

    Permutes `x_train` `[n_train, x_dim]`, drops the ragged last batch, binarises each batch with
    Bernoulli draws of its pixel intensities (unless `is_binarized`) and `lax.scan`s an optimizer
    step on `loss_fn(params, key, x, state) -> (cost, (state, elbo))` over the batches, threading
    the estimator's `state` (e.g. a `ReinforceState`; `()` when there is none). `elbos`
    `[n_train // batch_size]` are the batches' mean ELBOs (nats) before each update. Compiled once
    per training-set shape.
    """
    def step(carry, inputs):
        params, opt_state, state = carry
        key, x = inputs
        key_binarize, key_loss = jax.random.split(key)
        if not is_binarized:
            x = jax.random.bernoulli(key_binarize, x).astype(x.dtype)
        (_, (state, elbo)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, key_loss, x, state)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, state), elbo

    @jax.jit
    def epoch(params, opt_state, state, key, x_train):
        n_batches = x_train.shape[0] // batch_size
        key_order, key_steps = jax.random.split(key)
        order = jax.random.permutation(key_order, x_train.shape[0])[: n_batches * batch_size]
        batches = x_train[order].reshape(n_batches, batch_size, -1)
        (params, opt_state, state), elbos = jax.lax.scan(
            step, (params, opt_state, state), (jax.random.split(key_steps, n_batches), batches))
        return params, opt_state, state, elbos

    return epoch


class VariantFit(NamedTuple):
    """What `fit` returns: final `params`, estimator `state`, per-epoch `train_elbo` and `test_elbo`
    `[epochs]` (nats per digit; `test_elbo` None without test digits) and the training `seconds`."""

    params: dict
    state: Any
    train_elbo: np.ndarray
    test_elbo: np.ndarray | None
    seconds: float


def fit(key: jax.Array, epoch, params: dict, state, x_train, x_test, *, epochs: int,
        optimizer: optax.GradientTransformation, test_elbo_fn: Callable[[dict, jax.Array, Any], float],
        desc: str, show_progress: bool = True) -> VariantFit:
    """Runs `epochs` passes of a compiled `epoch` (from `make_epoch`) under a progress bar.

    Args:
      key: a JAX PRNG key.
      epoch: from `make_epoch`.
      params: the initial parameters; `state`: the estimator's initial state.
      x_train: `[n_train, x_dim]`; x_test: binary `[n_test, x_dim]` or None.
      epochs: passes over the data (>= 1).
      optimizer: the optax transformation `epoch` was built with (its state is initialised here).
      test_elbo_fn: `(params, key, x_test) -> float`, the test ELBO tracked after every epoch.
      desc: the progress bar's label.

    Raises:
      ValueError: `epochs < 1`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    opt_state = jax.jit(optimizer.init)(params)
    x_train = jnp.asarray(x_train, jnp.float32)
    keys = jax.random.split(key, 2 * epochs).reshape(epochs, 2)
    train_elbo, test_elbo, start = [], [], time.perf_counter()
    bar = cli.progress(range(epochs), desc=desc, unit="epoch", disable=not show_progress)
    for e in bar:
        params, opt_state, state, elbos = epoch(params, opt_state, state, keys[e, 0], x_train)
        train_elbo.append(float(np.mean(np.asarray(elbos))))
        postfix = {"train_elbo": f"{train_elbo[-1]:.2f}"}
        if x_test is not None:
            test_elbo.append(test_elbo_fn(params, keys[e, 1], x_test))
            postfix["test_elbo"] = f"{test_elbo[-1]:.2f}"
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(postfix)
    return VariantFit(params, state, np.asarray(train_elbo), np.asarray(test_elbo) if test_elbo else None,
                      time.perf_counter() - start)


def evaluate_in_chunks(chunks_fn, params: dict, key: jax.Array, x, x_dim: int, n_importance: int,
                       batch_size: int) -> dict:
    """Test ELBO and importance-sampled log-likelihood from a jitted per-chunk evaluator.

    Args:
      chunks_fn: `(params, key, chunks [n_chunks, batch, x_dim], n_importance) -> (elbo, log_lik)`,
        each `[n_chunks, batch]` (nats per digit), jitted with `n_importance` static.
      params: the model's parameters.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`; the last chunk is zero-padded and the padding dropped.
      x_dim: the expected width of `x`.
      n_importance, batch_size: samples per digit and digits per chunk.

    Returns:
      `{"test_elbo": float, "test_log_likelihood": float}`, means over the n digits.

    Raises:
      ValueError: `x` is not `[n, x_dim]` with n >= 1, or a non-positive size.
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != x_dim:
        raise ValueError(f"evaluate: x must be [n, {x_dim}] with n >= 1, got shape {x.shape}")
    if n_importance < 1 or batch_size < 1:
        raise ValueError(f"n_importance and batch_size must be positive, got {n_importance}, {batch_size}")
    n = x.shape[0]
    batch_size = min(batch_size, n)
    n_chunks = math.ceil(n / batch_size)
    padded = np.concatenate([x, np.zeros((n_chunks * batch_size - n, x_dim), x.dtype)])
    lower, log_lik = chunks_fn(params, key, padded.reshape(n_chunks, batch_size, x_dim), n_importance)
    return {"test_elbo": float(np.mean(np.asarray(lower).reshape(-1)[:n])),
            "test_log_likelihood": float(np.mean(np.asarray(log_lik).reshape(-1)[:n]))}


class PreparedRun(NamedTuple):
    """The data and keys of a variant's command-line run (see `prepare`)."""

    dataset: str
    epochs: int
    x_train: np.ndarray
    x_test: np.ndarray
    is_binarized: bool
    keys: dict


def spread(x: np.ndarray, n: int | None) -> np.ndarray:
    """`n` evenly spaced rows of `x` (all of them for None), so a subset keeps every class."""
    return x if n is None or n >= len(x) else x[np.linspace(0, len(x) - 1, n).astype(int)]


def prepare(args: argparse.Namespace, default_epochs: dict[str, int]) -> PreparedRun:
    """Checks the flags of `models.vae.model.add_arguments` and loads the data as `python -m models vae` does.

    The data set defaults to mnist with `--data-dir`, else the packaged mnist_5k; `--n-train` and
    `--n-test` take evenly spaced digits; grey-level test digits are binarised once with the run's
    key. `keys` holds independent keys "fit", "eval", "plot" split from `--seed`.

    Raises:
      ValueError: a non-positive `--epochs`, `--batch-size` or `--n-importance`, or a data set that
        needs `--data-dir` without one.
      FileNotFoundError: a missing data file.
    """
    data_dir = cli.data_dir_from(args)
    dataset = args.dataset or ("mnist" if data_dir is not None else "mnist_5k")
    epochs = args.epochs if args.epochs is not None else default_epochs[dataset]
    for flag, value in (("--epochs", epochs), ("--batch-size", args.batch_size),
                        ("--n-importance", args.n_importance)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    data = mnist.load_dataset(dataset, data_dir)
    x_train, x_test = spread(data.x_train, args.n_train), spread(data.x_test, args.n_test)
    key_fit, key_test, key_eval, key_plot = jax.random.split(jax.random.key(args.seed), 4)
    is_binarized = dataset == "binarized_mnist"
    if not is_binarized:
        x_test = np.asarray(jax.random.bernoulli(key_test, x_test), np.float32)
    return PreparedRun(dataset, epochs, x_train, x_test, is_binarized,
                       {"fit": key_fit, "eval": key_eval, "plot": key_plot})


def write_outputs(args: argparse.Namespace, run: PreparedRun, result: VariantFit, scores: dict,
                  details: dict, pictures_fn, start: float, name: str) -> dict:
    """Writes `metrics.json`, `samples.png`, `reconstructions.png` and `elbo.png` to `--out`.

    Args:
      args, run: the flags and `prepare`'s result.
      result: from `fit`; scores: from the variant's `evaluate`.
      details: the method's description (latent kind, estimator, flow, sizes), merged into the metrics.
      pictures_fn: `(params, key, x [40, x_dim]) -> (samples [100, x_dim], reconstructions [40, x_dim])`.
      start: `time.perf_counter()` at the start of the run; name: the run's label for the summary line.

    Returns:
      The metrics written (nats per digit; `seconds` is the whole run's wall time).
    """
    out = cli.output_dir(args)
    metrics = {"dataset": run.dataset, "epochs": run.epochs, "seed": args.seed, "n_train": len(run.x_train),
               "n_test": len(run.x_test), "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "n_importance": args.n_importance, **details, "train_elbo": float(result.train_elbo[-1]),
               **scores, "train_elbo_per_epoch": result.train_elbo, "test_elbo_per_epoch": result.test_elbo,
               "train_seconds": result.seconds}
    shown = spread(run.x_test, 40)
    samples, reconstructions = pictures_fn(result.params, run.keys["plot"], jnp.asarray(shown))
    plot_samples(out / "samples.png", np.asarray(samples))
    plot_reconstructions(out / "reconstructions.png", shown, np.asarray(reconstructions))
    plot_elbo(out / "elbo.png", result.train_elbo, result.test_elbo)
    metrics["seconds"] = time.perf_counter() - start
    path = cli.write_metrics(out, metrics)
    print(f"{name} on {run.dataset}: train ELBO {metrics['train_elbo']:.2f}, test ELBO "
          f"{scores['test_elbo']:.2f}, test log-likelihood {scores['test_log_likelihood']:.2f} nats "
          f"({args.n_importance} importance samples), {metrics['seconds']:.0f} s; wrote {path} and PNGs "
          f"to {out}")
    return metrics
