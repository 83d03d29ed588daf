"""Sigmoid belief network on MNIST, trained with VIMCO or reweighted wake-sleep (RWS).

The generative model has three layers of 200 binary units (ZhuSuan's SBN example; Mnih and Rezende
2016's 200-200-200 SBN): z3 ~ Bernoulli(sigmoid(b3)), z2 | z3 and z1 | z2 sigmoid layers,
x | z1 ~ Bernoulli(sigmoid(W z1 + b)). The variational net mirrors it bottom-up: q(z1 | x),
q(z2 | z1), q(z3 | z2), each a linear sigmoid layer. Binary latents cannot be reparameterised, so:

* `--method vimco`: the k-sample bound with VIMCO's leave-one-out control variates for q and the
  importance weighted gradient for the model (Mnih and Rezende, 2016);
* `--method rws`: the model follows the gradient of the k-sample bound (wake phase, samples fixed)
  and q follows the self-normalised inclusive-KL gradient `klpq(...).importance()` (Bornschein and
  Bengio, 2015).

Run it with `python -m models sbn --method vimco` (see `add_arguments`).

References:
  Neal, `Connectionist learning of belief networks <https://doi.org/10.1016/0004-3702(92)90065-6>`_,
  1992.
  Mnih and Rezende, `Variational inference for Monte Carlo objectives
  <https://arxiv.org/abs/1602.06725>`_, 2016.
  Bornschein and Bengio, `Reweighted Wake-Sleep <https://arxiv.org/abs/1406.2751>`_, 2015.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
import ppl
from inference.deprecation import renamed_arguments
from inference.importance import is_loglikelihood
from inference.iw_objective import iw_objective
from inference.klpq import klpq
from models import cli
from models.vae import model as vae
from models.vae import variants as vae_variants
from models.vae._training import binarizing_loss, check_training_set
from models.vae.cli import prepare_from_flags

__all__ = ["DEFAULT_EPOCHS", "SBNFit", "add_arguments", "build_gen", "build_q_net", "evaluate", "fit",
           "init_params", "loss_fn", "main"]

DEFAULT_EPOCHS = {"mnist_5k": 20, "mnist": 2, "binarized_mnist": 2}
METHODS = ("vimco", "rws")


def init_params(key: jax.Array, x_dim: int = 784, layers: tuple[int, ...] = (200, 200, 200)) -> dict:
    """Weights of the generative and variational nets (normal, std 0.01 / sqrt(fan-in) scaled).

    Returns:
      `{"gen": {"top": [L], "w": [layer widths...], "b": ...}, "q": {...}}`: `gen["w"][i]` maps
      layer i+1 down to layer i (layer 0 is x), `q["w"][i]` maps layer i up to layer i+1.
    """
    sizes = (x_dim, *layers)
    keys = jax.random.split(key, 2 * len(layers))

    def dense(k, d_in, d_out):
        return jax.random.normal(k, (d_in, d_out)) / math.sqrt(d_in)

    gen = {"top": jnp.zeros(sizes[-1]),
           "w": [dense(keys[i], sizes[i + 1], sizes[i]) for i in range(len(layers))],
           "b": [jnp.zeros(sizes[i]) for i in range(len(layers))]}
    q = {"w": [dense(keys[len(layers) + i], sizes[i], sizes[i + 1]) for i in range(len(layers))],
         "b": [jnp.zeros(sizes[i + 1]) for i in range(len(layers))]}
    return {"gen": gen, "q": q}


@ppl.meta_bayesian_net
def build_gen(params, n, n_particles=None):
    """p(z3) p(z2 | z3) p(z1 | z2) p(x | z1) for `n` digits.

    Nodes "z3", "z2", "z1" (Bernoulli, `[n_particles, n, 200]`, group_ndims=1), "x_mean" and "x"
    (`[n_particles, n, 784]`, group_ndims=1 for "x").
    """
    gen = params["gen"]
    bn = ppl.BayesianNet()
    n_layers = len(gen["w"])
    h = bn.bernoulli(f"z{n_layers}", logits=jnp.broadcast_to(gen["top"], (n, gen["top"].shape[0])),
                     group_ndims=1, n_samples=n_particles)
    for i in reversed(range(n_layers)):
        logits = h.astype(jnp.float32) @ gen["w"][i] + gen["b"][i]
        if i == 0:
            bn.deterministic("x_mean", jax.nn.sigmoid(logits))
            bn.bernoulli("x", logits=logits, group_ndims=1)
        else:
            h = bn.bernoulli(f"z{i}", logits=logits, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q_net(params, x, n_particles=None):
    """q(z1 | x) q(z2 | z1) q(z3 | z2): nodes "z1", "z2", "z3" Bernoulli `[n_particles, n, 200]`."""
    q = params["q"]
    bn = ppl.BayesianNet()
    h = x
    for i in range(len(q["w"])):
        logits = h.astype(jnp.float32) @ q["w"][i] + q["b"][i]
        h = bn.bernoulli(f"z{i + 1}", logits=logits, group_ndims=1, n_samples=n_particles if i == 0 else None)
    return bn


def loss_fn(params: dict, key: jax.Array, x: jax.Array, n_particles: int, method: str = "vimco") -> jax.Array:
    """Surrogate cost (nats per digit, batch mean) whose gradient trains both nets with `method`.

    Args:
      params: from `init_params`.
      key: a JAX PRNG key.
      x: binary digits `[n, 784]`.
      n_particles: samples per digit (>= 2 for VIMCO).
      method: "vimco" or "rws".

    Raises:
      ValueError: an unknown method.
    """
    model = build_gen(params, x.shape[0], n_particles=n_particles)
    q = build_q_net(params, x, n_particles=n_particles).observe(key)
    if method == "vimco":
        return jnp.mean(iw_objective(model, {"x": x}, variational=q, axis=0).vimco())
    if method == "rws":
        latent = {name: (node.value, jax.lax.stop_gradient(node.log_prob))
                  for name, node in q.latent_nodes().items()}
        model_cost = -iw_objective(model, {"x": x}, latent=latent, axis=0).value
        q_cost = klpq(model, {"x": x}, variational=q, axis=0).importance()
        return jnp.mean(model_cost + q_cost)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


class SBNFit(NamedTuple):
    """What `fit` returns: `params`, the per-epoch mean training cost `train_cost` `[n_epochs]`, the
    training `seconds`, and the driver's `inference.TrainResult` (`train`)."""

    params: dict
    train_cost: np.ndarray
    seconds: float
    train: inference.TrainResult


def fit(key: jax.Array, x_train, *, method: str = "vimco", n_particles: int = 10, n_epochs: int = 2,
        batch_size: int = 24, learning_rate: float = 3e-4, is_binarized: bool = True,
        progress_bar: bool = True, checkpoint_dir=None, checkpoint_every: int = 1, resume=False,
        **deprecated) -> SBNFit:
    """Trains the SBN with Adam through `inference.fit` (one jitted `lax.scan` per epoch).

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, 784]` in [0, 1] (binarised per batch unless `is_binarized`).
      method: "vimco" or "rws" (see `loss_fn`).
      n_particles: samples per digit (>= 2 for VIMCO).
      n_epochs, batch_size, learning_rate: the usual.
      progress_bar: show the driver's progress bar.
      checkpoint_dir, checkpoint_every, resume: as in `inference.fit`.
      **deprecated: `k` (use `n_particles`), `epochs` (use `n_epochs`), `show_progress` (use
        `progress_bar`), with a `DeprecationWarning`.

    Raises:
      ValueError: an unknown method, `n_particles < 2` with VIMCO, or too few training digits.
    """
    renamed = renamed_arguments(deprecated, {"k": "n_particles", "epochs": "n_epochs",
                                             "show_progress": "progress_bar"}, "sbn.fit")
    n_particles = renamed.get("n_particles", n_particles)
    n_epochs = renamed.get("n_epochs", n_epochs)
    progress_bar = renamed.get("progress_bar", progress_bar)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n_particles < 1 or (method == "vimco" and n_particles < 2):
        raise ValueError(f"{method} needs n_particles >= {2 if method == 'vimco' else 1} samples, "
                         f"got n_particles={n_particles}")
    x_train = check_training_set(x_train, batch_size)
    key_init, key_train = jax.random.split(key)
    params = init_params(key_init, x_train.shape[1])
    loss = binarizing_loss(lambda p, k, x: loss_fn(p, k, x, n_particles, method), is_binarized)
    result = inference.fit(key_train, loss, params, optax.adam(learning_rate), x_train, n_epochs=n_epochs,
                           batch_size=batch_size, progress_bar=progress_bar, checkpoint_dir=checkpoint_dir,
                           checkpoint_every=checkpoint_every, resume=resume)
    return SBNFit(result.params, np.asarray(result.history["cost"]), float(np.sum(result.history["seconds"])),
                  result)


@functools.partial(jax.jit, static_argnames="n_importance")
def _evaluate_chunks(params, key, chunks, n_importance):
    def one(inputs):
        key, x = inputs
        model = build_gen(params, x.shape[0], n_particles=n_importance)
        q = build_q_net(params, x, n_particles=n_importance).observe(key)
        objective = iw_objective(model, {"x": x}, variational=q, axis=0)
        return jnp.mean(objective.log_weight, 0), is_loglikelihood(model, {"x": x}, proposal=q, axis=0)
    return jax.lax.map(one, (jax.random.split(key, chunks.shape[0]), chunks))


def evaluate(params: dict, key: jax.Array, x, n_importance: int = 1000, batch_size: int = 25) -> dict:
    """Test ELBO and importance-sampled test log-likelihood (nats per digit) with samples from q.

    Raises:
      ValueError: `x` is not `[n, 784]` with n >= 1.
    """
    x_dim = params["gen"]["w"][0].shape[1]
    return vae_variants.evaluate_in_chunks(_evaluate_chunks, params, key, x, x_dim, n_importance, batch_size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The SBN's flags: the shared ones (`--method vimco|rws`), `--n-particles`, `--n-importance`, sizes."""
    cli.add_common_arguments(parser, name="sbn", method="vimco", methods=METHODS)
    cli.add_mnist_arguments(parser, DEFAULT_EPOCHS)
    cli.add_checkpoint_arguments(parser)
    parser.add_argument("--n-particles", "--k", dest="n_particles", type=cli.positive_int, default=10,
                        help="samples per digit for training (>= 2 for VIMCO)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=24)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--n-importance", type=cli.positive_int, default=1000,
                        help="importance samples per test digit")


def main(args: argparse.Namespace) -> int:
    """Trains, evaluates, writes `metrics.json`, `samples.png` and `cost.png` to `--out`."""
    start = time.perf_counter()
    out = cli.output_dir(args)
    run = prepare_from_flags(args, DEFAULT_EPOCHS)
    dataset, epochs, x_train, x_test, is_binarized = run[:5]
    key_fit, key_eval, key_plot = run.keys["fit"], run.keys["eval"], run.keys["plot"]
    result = fit(key_fit, x_train, method=args.method, n_particles=args.n_particles, n_epochs=epochs,
                 batch_size=args.batch_size, learning_rate=args.learning_rate, is_binarized=is_binarized,
                 progress_bar=not args.quiet, **cli.checkpoint_options(args, out))
    eval_start = time.perf_counter()
    scores = evaluate(result.params, key_eval, x_test, n_importance=args.n_importance)
    metrics = {"dataset": dataset, "method": args.method, "n_particles": args.n_particles, "epochs": epochs,
               "seed": args.seed,
               "n_train": len(x_train), "n_test": len(x_test), "layers": [200, 200, 200],
               "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "n_importance": args.n_importance, "train_cost_per_epoch": result.train_cost, **scores,
               "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - eval_start}
    x_mean = jax.jit(lambda key: build_gen(result.params, 100).observe(key)["x_mean"].value)(key_plot)
    vae.plot_samples(out / "samples.png", np.asarray(x_mean))
    vae.plot_elbo(out / "cost.png", -result.train_cost, None)
    metrics["seconds"] = time.perf_counter() - start
    path = cli.write_metrics(out, metrics)
    print(f"sbn ({args.method}, n_particles={args.n_particles}) on {dataset}: test log-likelihood "
          f"{scores['test_log_likelihood']:.2f} nats ({args.n_importance} samples), test ELBO "
          f"{scores['test_elbo']:.2f}; wrote {path}")
    return 0
