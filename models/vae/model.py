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

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
import ppl
from inference.deprecation import renamed_arguments
from models import nn
from models.vae import variants as vae_variants
from models.vae._training import check_training_set
from models.vae.plots import plot_elbo, plot_reconstructions, plot_samples

__all__ = [
    "DEFAULT_EPOCHS",
    "FitResult",
    "binarize",
    "build_gen",
    "build_q_net",
    "evaluate",
    "fit",
    "init_params",
    "loss_fn",
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


class FitResult(NamedTuple):
    """What `fit` returns: final `params`, per-epoch `train_elbo` and `test_elbo` `[n_epochs]` (nats),
    the training `seconds`, and the driver's `inference.TrainResult` (`train`)."""

    params: dict
    train_elbo: np.ndarray
    test_elbo: np.ndarray | None
    seconds: float
    train: Any = None


def _sgvb_loss(n_particles: int):
    def loss(params, key, x, state):
        cost = loss_fn(params, key, x, n_particles)
        return cost, (state, -cost)
    return loss


def _test_elbo(params, key, x_test):
    return evaluate(params, key, x_test, n_importance=1, batch_size=500)["test_elbo"]


def fit(key: jax.Array, x_train, x_test=None, *, n_epochs: int = 100, batch_size: int = 128,
        learning_rate: float = 1e-3, z_dim: int = 40, n_hidden: int = 500, n_particles: int = 1,
        is_binarized: bool = False, progress_bar: bool = True, checkpoint_dir=None, checkpoint_every: int = 1,
        resume=False, **deprecated) -> FitResult:
    """Trains the VAE with Adam on SGVB through `inference.fit` (one jitted `lax.scan` per epoch).

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, x_dim]` pixel intensities in [0, 1] (binarised per batch unless
        `is_binarized`); `n_train >= batch_size`.
      x_test: optional binary `[n_test, x_dim]`; its one-particle ELBO is tracked per epoch.
      n_epochs, batch_size, learning_rate, z_dim, n_hidden, n_particles: the usual.
      progress_bar: the driver's bar with the running cost and ELBO.
      checkpoint_dir, checkpoint_every, resume: as in `inference.fit`.
      **deprecated: `epochs` (use `n_epochs`), `show_progress` (use `progress_bar`), with a
        `DeprecationWarning`.

    Returns:
      A `FitResult`; `train_elbo[e]` is the mean minibatch ELBO during epoch e.

    Raises:
      ValueError: fewer training digits than one batch, `x_test` of another width, or a bad
        `n_epochs`.

    Example:
      >>> result = fit(jax.random.key(0), mnist.load_mnist_5k().x_train, n_epochs=1)
    """
    renamed = renamed_arguments(deprecated, {"epochs": "n_epochs", "show_progress": "progress_bar"},
                                "vae.fit")
    n_epochs = renamed.get("n_epochs", n_epochs)
    progress_bar = renamed.get("progress_bar", progress_bar)
    x_train = check_training_set(x_train, batch_size)
    if n_epochs < 1:
        raise ValueError(f"n_epochs must be positive, got {n_epochs}")
    x_test = None if x_test is None else jnp.asarray(x_test, jnp.float32)
    if x_test is not None and (x_test.ndim != 2 or x_test.shape[1] != x_train.shape[1] or not len(x_test)):
        raise ValueError(f"x_test must be [n_test, {x_train.shape[1]}] with n_test >= 1 like x_train, "
                         f"got shape {x_test.shape}")
    key_init, key_train = jax.random.split(key)
    params = init_params(key_init, x_train.shape[1], z_dim, n_hidden)
    run = vae_variants.fit(key_train, _sgvb_loss(n_particles), params, (), x_train, x_test, n_epochs=n_epochs,
                           optimizer=optax.adam(learning_rate), test_elbo_fn=_test_elbo,
                           batch_size=batch_size, is_binarized=is_binarized, progress_bar=progress_bar,
                           checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)
    return FitResult(run.params, run.train_elbo, run.test_elbo, run.seconds, run.train)


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
def pictures(params, key, x):
    """100 prior samples and the reconstructions of `x`, in one compilation."""
    key_samples, key_reconstruct = jax.random.split(key)
    return sample_digits(params, key_samples, 100), reconstruct(params, key_reconstruct, x)
