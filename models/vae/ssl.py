"""Semi-supervised VAE, model M2 of Kingma et al. (2014), with the label summed out exactly.

The generative model of a digit x with class y and style z:

  y ~ Categorical(1/10) (one-hot),  z ~ N(0, I),  x | y, z ~ Bernoulli(logits = MLP([z, y])),

and the variational net q(y | x) q(z | x, y): a classifier MLP(x) gives q(y | x), an encoder
MLP([x, y]) the diagonal normal q(z | x, y). Training maximises Kingma et al.'s J^alpha:

* a labelled digit's bound L(x, y) = E_q(z|x,y)[log p(x, y, z) - log q(z | x, y)], y observed;
* an unlabelled digit's bound U(x) = sum_y q(y | x) [L(x, y) - log q(y | x)], the label enumerated
  exactly (`inference.elbo(..., enumerate="y")`), so no REINFORCE and its gradient reaches the
  classifier;
* the classification loss alpha * E_labelled[-log q(y | x)], alpha = 0.1 N (N training digits).

The training cost of a step is `-w_l mean L - mean U + w_c mean(-log q(y | x))` with every labelled
digit in every step and a batch of unlabelled ones (`loss_weights`). The default weighting is
ZhuSuan's (w_l = 1, w_c = 1200), which reaches 5.5% test error on full MNIST with 100 labels;
`weighting="paper"` takes J^alpha / N literally (w_l = n_l / N, w_c = alpha / N = 0.1), which
learns to classify far more slowly (49% after 842 epochs; `benchmarks/README.md`). Test digits are
classified by argmax q(y | x).

Run it with `python -m models ssl_vae` (100 labels, 10 per class, from the packaged 5000 digits;
`--data-dir` for full MNIST), or from Python:

  >>> labelled = choose_labelled(jax.random.key(0), y_train, n_per_class=10)
  >>> params, history = fit(jax.random.key(1), x_train[labelled], y_train[labelled], x_train,
  ...                       n_epochs=10)
  >>> evaluate(params, jax.random.key(2), x_test, y_test)   # {"test_error": ..., ...}

References:
  Kingma, Rezende, Mohamed and Welling, `Semi-Supervised Learning with Deep Generative Models
  <https://arxiv.org/abs/1406.5298>`_, 2014 (M2, J^alpha, alpha = 0.1 N).
  Shi et al., `ZhuSuan: A Library for Bayesian Deep Learning <https://arxiv.org/abs/1709.05870>`_,
  2017 (`examples/semi_supervised_vae/vae_ssl.py`).
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
import ppl
from models import cli, nn
from models.data import mnist
from models.vae.plots import _save_grid, image_grid

__all__ = ["DEFAULT_EPOCHS", "N_CLASSES", "WEIGHTINGS", "add_arguments", "bounds", "build_gen", "build_q_net",
           "choose_labelled", "evaluate", "fit", "init_params", "loss_fn", "loss_weights", "main",
           "plot_class_samples", "sample_by_class", "test_error_fn"]

N_CLASSES = 10
# Passes over the unlabelled digits (batches of --batch-size).
DEFAULT_EPOCHS = {"mnist_5k": 100, "mnist": 30, "binarized_mnist": 30}


def init_params(key: jax.Array, x_dim: int = 784, z_dim: int = 50, n_hidden: int = 500) -> dict:
    """Classifier, encoder and decoder: MLPs with two ReLU layers of `n_hidden` units (He init).

    Returns:
      `{"classifier": x_dim -> 10 logits, "encoder": x_dim + 10 -> 2 z_dim (mean, log-std),
      "decoder": z_dim + 10 -> x_dim logits}`, each a list of `{"w", "b"}` layers (`models.nn`).
    """
    return _init_params(key, int(x_dim), int(z_dim), int(n_hidden))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _init_params(key, x_dim, z_dim, n_hidden):
    keys = jax.random.split(key, 3)
    hidden = [n_hidden, n_hidden]
    return {"classifier": nn.init_mlp(keys[0], [x_dim, *hidden, N_CLASSES]),
            "encoder": nn.init_mlp(keys[1], [x_dim + N_CLASSES, *hidden, 2 * z_dim]),
            "decoder": nn.init_mlp(keys[2], [z_dim + N_CLASSES, *hidden, x_dim])}


def _dims(params: dict) -> tuple[int, int]:
    """(x_dim, z_dim) of the decoder."""
    return params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0] - N_CLASSES


def _with_label(h: jax.Array, y: jax.Array) -> jax.Array:
    """`[..., d]` features and a one-hot `[n, 10]` label side by side, y broadcast over particles."""
    return jnp.concatenate([h, jnp.broadcast_to(y, h.shape[:-1] + (N_CLASSES,)).astype(h.dtype)], -1)


@ppl.meta_bayesian_net
def build_gen(params, n, n_particles=None):
    """p(y) p(z) p(x | y, z) for `n` digits.

    Nodes: "y" one-hot categorical, uniform, `[n_particles, n, 10]`; "z" normal
    `[n_particles, n, z_dim]` (group_ndims=1); "x_mean" pixel probabilities and "x" Bernoulli
    `[n_particles, n, x_dim]` (group_ndims=1). Without `n_particles` the leading axis is absent.
    """
    x_dim, z_dim = _dims(params)
    bn = ppl.BayesianNet()
    y = bn.onehot_categorical("y", logits=jnp.zeros([n, N_CLASSES]), n_samples=n_particles)
    z = bn.normal("z", jnp.zeros([n, z_dim]), std=1., group_ndims=1, n_samples=n_particles)
    logits = nn.mlp(params["decoder"], _with_label(z, y))
    bn.deterministic("x_mean", jax.nn.sigmoid(logits))
    bn.bernoulli("x", logits=logits, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q_net(params, x, n_particles=None):
    """q(y | x) q(z | x, y) for digits `x` `[n, x_dim]`.

    Nodes: "y" one-hot categorical `[n, 10]` with the classifier's logits (one label per digit,
    shared by the particles); "z" normal `[n_particles, n, z_dim]` (group_ndims=1).
    """
    _, z_dim = _dims(params)
    bn = ppl.BayesianNet()
    y = bn.onehot_categorical("y", logits=nn.mlp(params["classifier"], x))
    h = nn.mlp(params["encoder"], _with_label(x, y))
    bn.normal("z", h[..., :z_dim], logstd=h[..., z_dim:], group_ndims=1, n_samples=n_particles)
    return bn


def bounds(params: dict, key: jax.Array, x_l, y_l, x_u, n_particles: int = 1):
    """Per-digit labelled bound L `[n_l]`, unlabelled bound U `[n_u]` and log q(y | x) `[n_l]` of the labels.

    Args:
      x_l, y_l: labelled binary digits `[n_l, x_dim]` and their one-hot labels `[n_l, 10]`.
      x_u: unlabelled binary digits `[n_u, x_dim]`.
    """
    key_l, key_u = jax.random.split(key)
    q_l = build_q_net(params, x_l, n_particles).observe(key_l, y=y_l)
    labelled = inference.elbo(build_gen(params, x_l.shape[0], n_particles), {"x": x_l, "y": y_l},
                              variational=q_l, axis=0)
    q_u = build_q_net(params, x_u, n_particles).observe(key_u)
    unlabelled = inference.elbo(build_gen(params, x_u.shape[0], n_particles), {"x": x_u}, variational=q_u,
                                axis=0, enumerate="y")
    return labelled, unlabelled, q_l["y"].log_prob


def loss_fn(params: dict, key: jax.Array, x_l, y_l, x_u, weights: tuple[float, float, float]):
    """The SGVB cost of J^alpha per digit and its parts.

    Args:
      weights: `(w_l, w_u, w_c)`: the weights of the mean labelled bound, the mean unlabelled
        bound and the mean classification loss (`loss_weights`).

    Returns:
      `(cost, {"labelled_bound", "unlabelled_bound", "train_accuracy"})`, scalars.
    """
    labelled, unlabelled, log_qy = bounds(params, key, x_l, y_l, x_u)
    w_l, w_u, w_c = weights
    cost = (w_l * jnp.mean(labelled.sgvb()) + w_u * jnp.mean(unlabelled.sgvb()) - w_c * jnp.mean(log_qy))
    accuracy = jnp.mean(jnp.argmax(nn.mlp(params["classifier"], x_l), -1) == jnp.argmax(y_l, -1))
    return cost, {"labelled_bound": jnp.mean(labelled.value), "unlabelled_bound": jnp.mean(unlabelled.value),
                  "train_accuracy": accuracy}


def choose_labelled(key: jax.Array, labels, n_per_class: int = 10) -> np.ndarray:
    """Indices of `n_per_class` digits of each class, drawn without replacement with `key`.

    Raises:
      ValueError: a class has fewer than `n_per_class` digits.
    """
    labels = np.asarray(labels)
    order = np.asarray(jax.random.permutation(key, len(labels)))
    chosen = []
    for c in range(N_CLASSES):
        members = order[labels[order] == c][:n_per_class]
        if len(members) < n_per_class:
            raise ValueError(f"class {c} has {len(members)} digits, fewer than n_per_class={n_per_class}")
        chosen.append(members)
    return np.sort(np.concatenate(chosen))


WEIGHTINGS = ("zhusuan", "paper")


def loss_weights(weighting: str, n_l: int, n: int, labelled_weight: float | None = None,
                 alpha_scale: float | None = None) -> tuple[float, float, float]:
    """The weights `(w_l, w_u, w_c)` of `loss_fn` for a preset, with optional overrides.

    Args:
      weighting: "zhusuan" (`(1, 1, 1200)`: mean labelled and unlabelled bounds weighted equally and
        the mean classification loss by 1200, as ZhuSuan's `vae_ssl.py`) or "paper" (`(n_l / N, 1,
        0.1)`: Kingma et al.'s J^alpha divided by N, alpha = 0.1 N, every digit's bound counted once).
      n_l, n: labelled digits, and unlabelled digits N.
      labelled_weight, alpha_scale: replace w_l and w_c when given.

    Returns:
      `(w_l, w_u, w_c)`, floats.

    Raises:
      ValueError: an unknown `weighting`, no labelled or unlabelled digits, or a weight that is
        negative, infinite or NaN.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if n_l < 1 or n < 1:
        raise ValueError(f"need at least one labelled and one unlabelled digit, got n_l={n_l}, N={n}")
    presets = {"zhusuan": (1.0, 1.0, 1200.0), "paper": (n_l / n, 1.0, 0.1)}
    w_l, w_u, w_c = presets[weighting]
    w_l = w_l if labelled_weight is None else float(labelled_weight)
    w_c = w_c if alpha_scale is None else float(alpha_scale)
    if not (0 <= w_l < np.inf and 0 <= w_c < np.inf):          # NaN fails too
        raise ValueError(f"labelled_weight and alpha_scale must be finite and >= 0, got {w_l} and {w_c}")
    return w_l, w_u, w_c


def fit(key: jax.Array, x_l, y_l, x_u, *, n_epochs: int, batch_size: int = 100, learning_rate: float = 3e-4,
        weighting: str = "zhusuan", labelled_weight: float | None = None, alpha_scale: float | None = None,
        z_dim: int = 50, n_hidden: int = 500, eval_fn=None, callback_fn=None, progress_bar: bool = True):
    """Trains M2 with Adam through `inference.fit`, digits binarised afresh in every step.

    Args:
      key: a JAX PRNG key.
      x_l, y_l: labelled pixel intensities `[n_l, x_dim]` in [0, 1] and int labels `[n_l]` in 0..9.
      x_u: unlabelled intensities `[N, x_dim]` (may include the labelled digits).
      n_epochs, batch_size: passes over `x_u`, and unlabelled digits per step.
      weighting: the weights of the step's cost `w_l mean L + mean U + w_c mean(-log q(y | x))`
        (see `loss_weights`): "zhusuan" (default; ZhuSuan's `vae_ssl.py`: w_l = 1, w_c = 1200) or
        "paper" (Kingma et al.'s J^alpha / N taken literally: w_l = n_l / N, w_c = 0.1, i.e.
        alpha = 0.1 N). On full MNIST with 100 labels the first reached 5.5% test error in 372
        epochs and the second was still at 49% after 842 (`benchmarks/README.md`).
      labelled_weight, alpha_scale: override the preset's w_l and w_c.
      eval_fn: passed to `inference.fit`, run after every epoch (e.g. `test_error_fn`).
      callback_fn: passed to `inference.fit`: `callback_fn(epoch, params, state, record)` on the
        host after every epoch; returning True stops training (early stopping, a time budget).

    Returns:
      `(params, history)`: `history` from `inference.fit` (per-epoch "cost", "labelled_bound",
      "unlabelled_bound", "train_accuracy").

    Raises:
      ValueError: shapes that do not match, labels outside 0..9, a bad size or an unknown
        `weighting`.
    """
    x_l, x_u = jnp.asarray(x_l, jnp.float32), jnp.asarray(x_u, jnp.float32)
    y_l = np.asarray(y_l)
    if x_l.ndim != 2 or x_u.ndim != 2 or x_l.shape[1] != x_u.shape[1] or y_l.shape != (x_l.shape[0],):
        raise ValueError(f"x_l [n_l, x_dim], y_l [n_l] and x_u [N, x_dim] do not fit: {x_l.shape}, "
                         f"{y_l.shape}, {x_u.shape}")
    if y_l.min() < 0 or y_l.max() >= N_CLASSES:
        raise ValueError(f"y_l must be labels in 0..{N_CLASSES - 1}, got [{y_l.min()}, {y_l.max()}]")
    weights = loss_weights(weighting, x_l.shape[0], x_u.shape[0], labelled_weight, alpha_scale)
    onehot = jax.nn.one_hot(y_l, N_CLASSES, dtype=jnp.float32)
    key_init, key_fit = jax.random.split(key)
    params = init_params(key_init, x_u.shape[1], z_dim, n_hidden)

    def loss(params, key, x_batch, state):
        key_l, key_u, key_loss = jax.random.split(key, 3)
        binary_l = jax.random.bernoulli(key_l, x_l).astype(jnp.float32)
        binary_u = jax.random.bernoulli(key_u, x_batch).astype(jnp.float32)
        cost, metrics = loss_fn(params, key_loss, binary_l, onehot, binary_u, weights)
        return cost, (state, metrics)

    result = inference.fit(key_fit, loss, params, optax.adam(learning_rate), x_u, n_epochs=n_epochs,
                           batch_size=batch_size, eval_fn=eval_fn, callback_fn=callback_fn,
                           progress_bar=progress_bar)
    return result.params, result.history


@functools.partial(jax.jit, static_argnames="n_particles")
def _evaluate_chunk(params, key, x, y, n_particles):
    labelled, unlabelled, _ = bounds(params, key, x, jax.nn.one_hot(y, N_CLASSES), x, n_particles)
    errors = jnp.argmax(nn.mlp(params["classifier"], x), -1) != y
    return errors, labelled.value, unlabelled.value


def test_error_fn(x, y):
    """`eval_fn(params, key, state) -> {"test_error"}` for `inference.fit`: the fraction of binary
    digits `x` `[n, x_dim]` with labels `y` `[n]` that argmax q(y | x) misclassifies, once per epoch."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)

    def eval_fn(params, key, state):
        return {"test_error": jnp.mean(jnp.argmax(nn.mlp(params["classifier"], x), -1) != y)}

    return eval_fn


def evaluate(params: dict, key: jax.Array, x, y, n_particles: int = 10, batch_size: int = 500) -> dict:
    """Test classification error and both bounds (nats per digit) on binary digits `x` with labels `y`.

    Returns:
      `{"test_error": fraction misclassified by argmax q(y | x), "test_labelled_bound": mean L(x, y),
      "test_unlabelled_bound": mean U(x)}`, the bounds from `n_particles` samples of z per digit.

    Raises:
      ValueError: `x` is not `[n, x_dim]` with `n >= 1` labels `y`.
    """
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)
    if x.ndim != 2 or x.shape[0] == 0 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [n, x_dim] with labels y [n], got {x.shape} and {y.shape}")
    starts = range(0, len(x), batch_size)
    keys = jax.random.split(key, len(starts))
    parts = [_evaluate_chunk(params, keys[j], x[i:i + batch_size], y[i:i + batch_size], n_particles)
             for j, i in enumerate(starts)]
    errors, labelled, unlabelled = (np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(3))
    return {"test_error": float(errors.mean()), "test_labelled_bound": float(labelled.mean()),
            "test_unlabelled_bound": float(unlabelled.mean())}


@functools.partial(jax.jit, static_argnums=2)
def sample_by_class(params: dict, key: jax.Array, n_per_class: int = 10) -> jax.Array:
    """Pixel probabilities `[10 * n_per_class, x_dim]` of digits generated with y = 0, 0, ..., 9, 9."""
    y = jnp.repeat(jnp.eye(N_CLASSES, dtype=jnp.int32), n_per_class, axis=0)
    return build_gen(params, y.shape[0]).observe(key, y=y)["x_mean"].value


def plot_class_samples(path, x_mean, n_per_class: int = 10) -> None:
    """Saves the class-conditional samples (one row per digit 0..9) as a PNG."""
    _save_grid(path, image_grid(np.asarray(x_mean), n_per_class), "M2 samples: row d is x_mean for y = d")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `python -m models ssl_vae` (see `main`)."""
    cli.add_common_arguments(parser, name="ssl_vae")
    parser.add_argument("--dataset", choices=("mnist_5k", "mnist"), default=None,
                        help="mnist_5k: the 5000 packaged digits (4000 train, 1000 test); mnist: full "
                             "MNIST from --data-dir. Default: mnist with --data-dir, else mnist_5k")
    parser.add_argument("--epochs", type=int, default=None, help=f"passes over the unlabelled digits "
                                                                  f"(default {DEFAULT_EPOCHS})")
    parser.add_argument("--n-labels", type=int, default=100, help="labelled digits, as many per class")
    parser.add_argument("--batch-size", type=int, default=100, help="unlabelled digits per step")
    parser.add_argument("--learning-rate", type=float, default=3e-4, help="Adam's learning rate")
    parser.add_argument("--weighting", choices=WEIGHTINGS, default="zhusuan",
                        help="weights of the mean labelled bound and the mean classification loss: "
                             "zhusuan (1 and 1200, the default) or paper (n_l / N and 0.1: J^alpha / N, "
                             "alpha = 0.1 N)")
    parser.add_argument("--labelled-weight", type=float, default=None, help="override the weighting's "
                                                                             "labelled-bound weight")
    parser.add_argument("--alpha-scale", type=float, default=None, help="override the weighting's "
                                                                         "classification weight")
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--n-hidden", type=int, default=500)
    parser.add_argument("--n-train", type=int, default=None, help=argparse.SUPPRESS)  # tests: subsets
    parser.add_argument("--n-test", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="wall-clock budget for training: stop at the end of the first epoch past it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _time_budget(minutes: float | None):
    """A `callback_fn` for `fit` that stops training once `minutes` of wall time have passed."""
    if minutes is None:
        return None
    deadline = time.perf_counter() + 60.0 * minutes
    return lambda epoch, params, state, record: time.perf_counter() > deadline


def main(args: argparse.Namespace) -> int:
    """Trains M2, writes `metrics.json` (test error, both bounds, the labelled indices' seed) and
    `class_samples.png` to `--out`.

    Raises:
      ValueError: `--n-labels` not a positive multiple of 10, a bad size, or `--dataset mnist`
        without `--data-dir`.
    """
    if args.n_labels < N_CLASSES or args.n_labels % N_CLASSES:
        raise ValueError(f"--n-labels must be a positive multiple of {N_CLASSES}, got {args.n_labels}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max-minutes must be positive, got {args.max_minutes}")
    for flag in ("epochs", "batch_size", "n_train", "n_test"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    start = time.perf_counter()
    data_dir = cli.data_dir_from(args)
    dataset = args.dataset or ("mnist" if data_dir is not None else "mnist_5k")
    data = mnist.load_dataset(dataset, data_dir)
    names = ("subset", "test", "labels", "fit", "binarize", "eval", "samples")
    keys = dict(zip(names, jax.random.split(jax.random.key(args.seed), len(names)), strict=True))
    # --n-train / --n-test: random subsets (the packaged training digits are sorted by class)
    train = np.asarray(jax.random.permutation(keys["subset"], len(data.x_train)))[: args.n_train]
    test = np.asarray(jax.random.permutation(keys["test"], len(data.x_test)))[: args.n_test]
    x_train, y_train = data.x_train[train], data.y_train[train]
    x_test, y_test = data.x_test[test], data.y_test[test]
    labelled = choose_labelled(keys["labels"], y_train, args.n_labels // N_CLASSES)
    epochs = args.epochs or DEFAULT_EPOCHS[dataset]
    x_test = np.asarray(jax.random.bernoulli(keys["binarize"], x_test), np.float32)  # binarised once
    weights_used = loss_weights(args.weighting, len(labelled), len(x_train), args.labelled_weight,
                                args.alpha_scale)
    params, history = fit(keys["fit"], x_train[labelled], y_train[labelled], x_train, n_epochs=epochs,
                          batch_size=min(args.batch_size, len(x_train)), learning_rate=args.learning_rate,
                          weighting=args.weighting, labelled_weight=args.labelled_weight,
                          alpha_scale=args.alpha_scale, z_dim=args.z_dim, n_hidden=args.n_hidden,
                          eval_fn=test_error_fn(x_test, y_test), callback_fn=_time_budget(args.max_minutes),
                          progress_bar=not args.quiet)
    scores = evaluate(params, keys["eval"], x_test, y_test)
    out = cli.output_dir(args)
    plot_class_samples(out / "class_samples.png", sample_by_class(params, keys["samples"], 10))
    metrics = {"model": "ssl_vae", "dataset": dataset, "n_labels": args.n_labels, "epochs": epochs,
               "epochs_run": len(history["cost"]), "max_minutes": args.max_minutes,
               "weighting": args.weighting, "weights": weights_used,
               "n_train": len(x_train), "n_test": len(x_test), **scores,
               "train_labelled_bound": float(history["labelled_bound"][-1]),
               "train_unlabelled_bound": float(history["unlabelled_bound"][-1]),
               "history": {k: history[k] for k in ("cost", "labelled_bound", "unlabelled_bound",
                                                    "train_accuracy", "test_error", "seconds")},
               "seconds": time.perf_counter() - start}
    cli.write_metrics(out, metrics)
    print(f"ssl_vae ({dataset}, {args.n_labels} labels): test error {scores['test_error']:.4f}, "
          f"labelled bound {scores['test_labelled_bound']:.2f}, unlabelled bound "
          f"{scores['test_unlabelled_bound']:.2f} nats")
    return 0
