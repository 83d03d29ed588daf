"""Importance weighted autoencoder (IWAE) on binarized MNIST, with k = 5 or k = 50 samples.

The model and encoder are the VAE's (`models.vae.model`: z ~ N(0, I), x | z ~ Bernoulli(MLP(z)), a
diagonal-normal q(z | x)) with Burda et al.'s one-stochastic-layer sizes: 50 latent units and two
hidden layers of 200 units (ReLU here, tanh in the paper). Training maximises the k-sample
importance weighted bound with its reparameterised gradient (`--estimator iwae`) or the doubly
reparameterised one (`--estimator dreg`, Tucker et al. 2019), Adam, batches of 100; k = 1 is the
VAE. The test log-likelihood is the importance-sampled estimate with 5000 samples per digit
(Burda et al.'s protocol; `--n-importance` reduces it).

Run it with `python -m models iwae --n-particles 50` (see `add_arguments`).

References:
  Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, 2015.
  Tucker, Lawson, Gu and Maddison, `Doubly Reparameterized Gradient Estimators for Monte Carlo
  Objectives <https://arxiv.org/abs/1810.04152>`_, 2019.
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
from inference.deprecation import renamed_arguments
from inference.iw_objective import iw_objective
from models import cli
from models.vae import model as vae
from models.vae._training import binarizing_loss, check_training_set
from models.vae.cli import prepare_from_flags

__all__ = ["DEFAULT_EPOCHS", "IWAEFit", "add_arguments", "fit", "loss_fn", "main"]

DEFAULT_EPOCHS = {"mnist_5k": 20, "mnist": 3, "binarized_mnist": 3}
Z_DIM, N_HIDDEN = 50, 200


def loss_fn(params: dict, key: jax.Array, x: jax.Array, n_particles: int,
            estimator: str = "iwae") -> jax.Array:
    """The negative `n_particles`-sample bound's surrogate cost, averaged over the batch `x` `[n, 784]`.

    Args:
      params: from `models.vae.model.init_params(key, z_dim=50, n_hidden=200)`.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      n_particles: importance samples per digit.
      estimator: "iwae" (reparameterised gradient of the bound) or "dreg" (doubly reparameterised;
        q's log-density is re-evaluated with stopped encoder parameters, the recipe documented in
        `ImportanceWeightedObjective.dreg`).

    Raises:
      ValueError: an unknown estimator.
    """
    x_dim, z_dim = params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0]
    model = vae.build_gen(params, x.shape[0], x_dim, z_dim, n_particles=n_particles)
    q = vae.build_q_net(params, x, z_dim, n_particles=n_particles).observe(key)
    if estimator == "iwae":
        return jnp.mean(iw_objective(model, {"x": x}, variational=q, axis=0).sgvb())
    if estimator == "dreg":
        z = q["z"].value
        stopped = jax.tree_util.tree_map(jax.lax.stop_gradient, params)
        log_q = vae.build_q_net(stopped, x, z_dim, n_particles=n_particles).observe(z=z)["z"].log_prob
        return jnp.mean(iw_objective(model, {"x": x}, latent={"z": (z, log_q)}, axis=0).dreg())
    raise ValueError(f"estimator must be 'iwae' or 'dreg', got {estimator!r}")


class IWAEFit(NamedTuple):
    """What `fit` returns: `params`, the per-epoch training bound `train_bound` `[n_epochs]` (nats),
    the training `seconds`, and the driver's `inference.TrainResult` (`train`)."""

    params: dict
    train_bound: np.ndarray
    seconds: float
    train: inference.TrainResult


def fit(key: jax.Array, x_train, *, n_particles: int = 50, n_epochs: int = 3, batch_size: int = 100,
        learning_rate: float = 1e-3, estimator: str = "iwae", is_binarized: bool = True,
        z_dim: int = Z_DIM, n_hidden: int = N_HIDDEN, progress_bar: bool = True,
        checkpoint_dir=None, checkpoint_every: int = 1, resume=False, **deprecated) -> IWAEFit:
    """Trains the IWAE with Adam through `inference.fit` (one jitted `lax.scan` per epoch).

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, x_dim]` in [0, 1] (binarised per batch unless `is_binarized`).
      n_particles: importance samples per digit (1: the VAE).
      n_epochs, batch_size, learning_rate, z_dim, n_hidden: the usual.
      estimator: "iwae" or "dreg" (see `loss_fn`).
      progress_bar: show the driver's progress bar.
      checkpoint_dir, checkpoint_every, resume: as in `inference.fit`.
      **deprecated: `k` (use `n_particles`), `epochs` (use `n_epochs`), `show_progress` (use
        `progress_bar`), with a `DeprecationWarning`.

    Raises:
      ValueError: `n_particles`, `n_epochs` not positive, or fewer training digits than one batch.
    """
    renamed = renamed_arguments(deprecated, {"k": "n_particles", "epochs": "n_epochs",
                                             "show_progress": "progress_bar"}, "iwae.fit")
    n_particles = renamed.get("n_particles", n_particles)
    n_epochs = renamed.get("n_epochs", n_epochs)
    progress_bar = renamed.get("progress_bar", progress_bar)
    if n_particles < 1 or n_epochs < 1:
        raise ValueError(f"n_particles and n_epochs must be positive, got n_particles={n_particles}, "
                         f"n_epochs={n_epochs}")
    if estimator not in ("iwae", "dreg"):
        raise ValueError(f"estimator must be 'iwae' or 'dreg', got {estimator!r}")
    x_train = check_training_set(x_train, batch_size)
    key_init, key_train = jax.random.split(key)
    params = vae.init_params(key_init, x_train.shape[1], z_dim, n_hidden)
    loss = binarizing_loss(lambda p, k, x: loss_fn(p, k, x, n_particles, estimator), is_binarized)
    result = inference.fit(key_train, loss, params, optax.adam(learning_rate), x_train, n_epochs=n_epochs,
                           batch_size=batch_size, progress_bar=progress_bar, checkpoint_dir=checkpoint_dir,
                           checkpoint_every=checkpoint_every, resume=resume)
    return IWAEFit(result.params, -np.asarray(result.history["cost"]),
                   float(np.sum(result.history["seconds"])), result)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The IWAE's flags: the shared ones plus `--n-particles`, `--estimator`, `--n-importance`, sizes."""
    cli.add_common_arguments(parser, name="iwae")
    cli.add_mnist_arguments(parser, DEFAULT_EPOCHS)
    cli.add_checkpoint_arguments(parser)
    parser.add_argument("--n-particles", "--k", dest="n_particles", type=cli.positive_int, default=50,
                        help="importance samples per digit in training (1: the VAE; Burda et al.: 5, 50)")
    parser.add_argument("--estimator", default="iwae", choices=["iwae", "dreg"], help="gradient estimator")
    parser.add_argument("--batch-size", type=cli.positive_int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-importance", type=cli.positive_int, default=5000,
                        help="importance samples per test digit (Burda et al.: 5000)")


def main(args: argparse.Namespace) -> int:
    """Trains, evaluates the test log-likelihood, writes `metrics.json` and PNGs to `--out`."""
    start = time.perf_counter()
    out = cli.output_dir(args)
    run = prepare_from_flags(args, DEFAULT_EPOCHS)
    dataset, epochs, x_train, x_test, is_binarized = run[:5]
    key_fit, key_eval, key_plot = run.keys["fit"], run.keys["eval"], run.keys["plot"]
    result = fit(key_fit, x_train, n_particles=args.n_particles, n_epochs=epochs, batch_size=args.batch_size,
                 learning_rate=args.learning_rate, estimator=args.estimator, is_binarized=is_binarized,
                 progress_bar=not args.quiet, **cli.checkpoint_options(args, out))
    eval_start = time.perf_counter()
    scores = vae.evaluate(result.params, key_eval, x_test, n_importance=args.n_importance,
                          batch_size=max(1, min(25, 50000 // args.n_importance)))
    metrics = {"dataset": dataset, "n_particles": args.n_particles, "estimator": args.estimator,
               "epochs": epochs, "seed": args.seed, "n_train": len(x_train), "n_test": len(x_test),
               "z_dim": Z_DIM, "n_hidden": N_HIDDEN, "batch_size": args.batch_size,
               "learning_rate": args.learning_rate,
               "n_importance": args.n_importance, "train_bound": float(result.train_bound[-1]),
               "train_bound_per_epoch": result.train_bound, **scores,
               "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - eval_start}
    vae.plot_samples(out / "samples.png", np.asarray(vae.sample_digits(result.params, key_plot, 100)))
    vae.plot_elbo(out / "bound.png", result.train_bound, None)
    metrics["seconds"] = time.perf_counter() - start
    path = cli.write_metrics(out, metrics)
    print(f"iwae n_particles={args.n_particles} on {dataset}: train bound {metrics['train_bound']:.2f}, "
          f"test log-likelihood {scores['test_log_likelihood']:.2f} nats ({args.n_importance} samples), "
          f"test ELBO {scores['test_elbo']:.2f}; wrote {path}")
    return 0
