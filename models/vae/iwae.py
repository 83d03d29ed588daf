"""Importance weighted autoencoder (IWAE) on binarized MNIST, with k = 5 or k = 50 samples.

The model and encoder are the VAE's (`models.vae.model`: z ~ N(0, I), x | z ~ Bernoulli(MLP(z)), a
diagonal-normal q(z | x)) with Burda et al.'s one-stochastic-layer sizes: 50 latent units and two
hidden layers of 200 units (ReLU here, tanh in the paper). Training maximises the k-sample
importance weighted bound with its reparameterised gradient (`--estimator iwae`) or the doubly
reparameterised one (`--estimator dreg`, Tucker et al. 2019), Adam, batches of 100; k = 1 is the
VAE. The test log-likelihood is the importance-sampled estimate with 5000 samples per digit
(Burda et al.'s protocol; `--n-importance` reduces it).

Run it with `python -m models iwae --k 50` (see `add_arguments`).

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

from inference.iw_objective import iw_objective
from models import cli, training
from models.data import mnist
from models.vae import model as vae

__all__ = ["DEFAULT_EPOCHS", "IWAEFit", "add_arguments", "fit", "loss_fn", "main", "make_epoch"]

DEFAULT_EPOCHS = {"mnist_5k": 20, "mnist": 3, "binarized_mnist": 3}
Z_DIM, N_HIDDEN = 50, 200


def loss_fn(params: dict, key: jax.Array, x: jax.Array, k: int, estimator: str = "iwae") -> jax.Array:
    """The negative k-sample bound's surrogate cost, averaged over the batch `x` `[n, 784]` (nats).

    Args:
      params: from `models.vae.model.init_params(key, z_dim=50, n_hidden=200)`.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      k: importance samples per digit.
      estimator: "iwae" (reparameterised gradient of the bound) or "dreg" (doubly reparameterised;
        q's log-density is re-evaluated with stopped encoder parameters, the recipe documented in
        `ImportanceWeightedObjective.dreg`).

    Raises:
      ValueError: an unknown estimator.
    """
    x_dim, z_dim = params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0]
    model = vae.build_gen(params, x.shape[0], x_dim, z_dim, n_particles=k)
    q = vae.build_q_net(params, x, z_dim, n_particles=k).observe(key)
    if estimator == "iwae":
        return jnp.mean(iw_objective(model, {"x": x}, variational=q, axis=0).sgvb())
    if estimator == "dreg":
        z = q["z"].value
        stopped = jax.tree_util.tree_map(jax.lax.stop_gradient, params)
        log_q = vae.build_q_net(stopped, x, z_dim, n_particles=k).observe(z=z)["z"].log_prob
        return jnp.mean(iw_objective(model, {"x": x}, latent={"z": (z, log_q)}, axis=0).dreg())
    raise ValueError(f"estimator must be 'iwae' or 'dreg', got {estimator!r}")


def make_epoch(optimizer: optax.GradientTransformation, k: int, batch_size: int = 100,
               is_binarized: bool = True, estimator: str = "iwae"):
    """A jitted pass over the data: `epoch(params, opt_state, key, x_train) -> (params, opt_state, losses)`.

    Permutes `x_train` `[n_train, 784]`, drops the ragged last batch, binarises each batch (unless
    `is_binarized`) and `lax.scan`s the Adam step; `losses` `[n_train // batch_size]`.
    """
    return training.make_binarized_epoch(
        lambda params, key, x: loss_fn(params, key, x, k, estimator), optimizer, batch_size, is_binarized)


class IWAEFit(NamedTuple):
    """What `fit` returns: `params`, the per-epoch training bound `train_bound` `[epochs]` (nats)."""

    params: dict
    train_bound: np.ndarray
    seconds: float


def fit(key: jax.Array, x_train, *, k: int = 50, epochs: int = 3, batch_size: int = 100,
        learning_rate: float = 1e-3, estimator: str = "iwae", is_binarized: bool = True,
        z_dim: int = Z_DIM, n_hidden: int = N_HIDDEN, show_progress: bool = True) -> IWAEFit:
    """Trains the IWAE with Adam, one jitted `lax.scan` per epoch.

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, x_dim]` in [0, 1] (binarised per batch unless `is_binarized`).
      k: importance samples per digit (1: the VAE).
      epochs, batch_size, learning_rate, z_dim, n_hidden: the usual.
      estimator: "iwae" or "dreg" (see `loss_fn`).

    Raises:
      ValueError: `k`, `epochs` not positive, or fewer training digits than one batch.
    """
    if k < 1 or epochs < 1:
        raise ValueError(f"k and epochs must be positive, got k={k}, epochs={epochs}")
    x_train = training.check_training_set(x_train, batch_size)
    key_init, key_train = jax.random.split(key)
    params = vae.init_params(key_init, x_train.shape[1], z_dim, n_hidden)
    optimizer = optax.adam(learning_rate)
    opt_state = jax.jit(optimizer.init)(params)
    epoch = make_epoch(optimizer, k, batch_size, is_binarized, estimator)
    params, _, bounds, seconds = training.run_epochs(
        epoch, params, opt_state, key_train, x_train, epochs, desc=f"iwae-{k}", show_progress=show_progress,
        sign=-1.0, postfix="train_bound")
    return IWAEFit(params, bounds, seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The IWAE's flags: the shared ones plus `--k`, `--estimator`, `--n-importance`, sizes."""
    cli.add_common_arguments(parser, name="iwae")
    mnist.add_mnist_arguments(parser, DEFAULT_EPOCHS)
    parser.add_argument("--k", type=int, default=50, choices=[1, 5, 50], help="importance samples (1: VAE)")
    parser.add_argument("--estimator", default="iwae", choices=["iwae", "dreg"], help="gradient estimator")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-importance", type=int, default=5000,
                        help="importance samples per test digit (Burda et al.: 5000)")


def main(args: argparse.Namespace) -> int:
    """Trains, evaluates the test log-likelihood, writes `metrics.json` and PNGs to `--out`."""
    start = time.perf_counter()
    data_dir = cli.data_dir_from(args)
    key_fit, key_test, key_eval, key_plot = jax.random.split(jax.random.key(args.seed), 4)
    prepared = mnist.prepare_from_args(args, data_dir, DEFAULT_EPOCHS, vae.binarize, key_test)
    dataset, epochs, x_train, x_test, is_binarized = prepared
    out = cli.output_dir(args)
    result = fit(key_fit, x_train, k=args.k, epochs=epochs, batch_size=args.batch_size,
                 learning_rate=args.learning_rate, estimator=args.estimator, is_binarized=is_binarized,
                 show_progress=not args.quiet)
    eval_start = time.perf_counter()
    scores = vae.evaluate(result.params, key_eval, x_test, n_importance=args.n_importance,
                          batch_size=max(1, min(25, 50000 // args.n_importance)))
    metrics = {"dataset": dataset, "k": args.k, "estimator": args.estimator, "epochs": epochs,
               "seed": args.seed, "n_train": len(x_train), "n_test": len(x_test), "z_dim": Z_DIM,
               "n_hidden": N_HIDDEN, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "n_importance": args.n_importance, "train_bound": float(result.train_bound[-1]),
               "train_bound_per_epoch": result.train_bound, **scores,
               "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - eval_start}
    vae.plot_samples(out / "samples.png", np.asarray(vae.sample_digits(result.params, key_plot, 100)))
    vae.plot_elbo(out / "bound.png", result.train_bound, None)
    metrics["seconds"] = time.perf_counter() - start
    path = cli.write_metrics(out, metrics)
    print(f"iwae k={args.k} on {dataset}: train bound {metrics['train_bound']:.2f}, test log-likelihood "
          f"{scores['test_log_likelihood']:.2f} nats ({args.n_importance} samples), test ELBO "
          f"{scores['test_elbo']:.2f}; wrote {path}")
    return 0
