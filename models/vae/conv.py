"""Convolutional VAE (ZhuSuan's `vae_conv.py`): 5-layer CNN encoder and decoder written in flax linen.

The model is the VAE of `models.vae.model` (z ~ N(0, I), x | z ~ Bernoulli) with convolutional
networks in place of the MLPs: the encoder maps a 28x28 digit through four 3x3 convolutions
(16, 32 stride 2, 32, 64 stride 2 channels) and a dense layer to the mean and log-std of q(z | x);
the decoder maps z through a dense layer to 7x7x64, two stride-2 transposed convolutions (32, 16
channels) around a 3x3 convolution, and a last 3x3 convolution to the 28x28 Bernoulli logits. The
linen modules become `(params, apply_fn)` pairs by `ppl.nn.split_module`; training runs through
`inference.fit` (SGVB, Adam, dynamic binarisation).

Run it with `python -m models vae --arch conv` (same flags and outputs as the MLP VAE), or:

  >>> nets = make_networks(jax.random.key(0), z_dim=40)
  >>> params = fit(jax.random.key(1), nets, x_train, n_epochs=10).params
  >>> evaluate(nets, params, jax.random.key(2), x_test)   # {"test_elbo", "test_log_likelihood"}

References:
  Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
  Shi et al., `ZhuSuan: A Library for Bayesian Deep Learning <https://arxiv.org/abs/1709.05870>`_,
  2017 (`examples/variational_autoencoders/vae_conv.py`).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

import inference
import ppl
from models.vae import variants as vae_variants

__all__ = ["ConvNets", "build_gen", "build_q_net", "evaluate", "fit", "make_networks", "pictures_fn",
           "test_elbo_fn"]


class ConvNets(NamedTuple):
    """The networks as pure functions: `encode(params["encoder"], x [n, 784]) -> [n, 2 z_dim]`,
    `decode(params["decoder"], z [..., z_dim]) -> [..., 784]` logits, and their initial `params`."""

    params: dict
    encode: Callable
    decode: Callable
    z_dim: int


def _modules(z_dim: int):
    from flax import linen

    class Encoder(linen.Module):
        @linen.compact
        def __call__(self, x):
            h = x.reshape(x.shape[:-1] + (28, 28, 1))
            for features, stride in ((16, 1), (32, 2), (32, 1), (64, 2)):
                h = jax.nn.relu(linen.Conv(features, (3, 3), strides=stride)(h))
            return linen.Dense(2 * z_dim)(h.reshape(h.shape[:-3] + (-1,)))

    class Decoder(linen.Module):
        @linen.compact
        def __call__(self, z):
            h = jax.nn.relu(linen.Dense(7 * 7 * 64)(z)).reshape(z.shape[:-1] + (7, 7, 64))
            h = jax.nn.relu(linen.ConvTranspose(32, (3, 3), strides=(2, 2))(h))
            h = jax.nn.relu(linen.Conv(32, (3, 3))(h))
            h = jax.nn.relu(linen.ConvTranspose(16, (3, 3), strides=(2, 2))(h))
            return linen.Conv(1, (3, 3))(h).reshape(h.shape[:-3] + (784,))

    return Encoder(), Decoder()


def make_networks(key: jax.Array, z_dim: int = 40) -> ConvNets:
    """The encoder and decoder, initialised with `key` (needs flax: `pip install ppl-jax[nn]`).

    Raises:
      ValueError: `z_dim` < 1.
    """
    if z_dim < 1:
        raise ValueError(f"z_dim must be positive, got {z_dim}")
    encoder, decoder = _modules(int(z_dim))
    key_encoder, key_decoder = jax.random.split(key)
    encoder_params, encode = ppl.nn.split_module(encoder, jnp.zeros((1, 784)), key=key_encoder)
    decoder_params, decode = ppl.nn.split_module(decoder, jnp.zeros((1, z_dim)), key=key_decoder)
    return ConvNets({"encoder": encoder_params, "decoder": decoder_params}, encode, decode, int(z_dim))


def _batched(fn, params, inputs):
    """Applies a network to `[..., n, d]` inputs with any leading axes (conv layers want one batch axis)."""
    flat = inputs.reshape((-1, inputs.shape[-1]))
    out = fn(params, flat)
    return out.reshape(inputs.shape[:-1] + out.shape[-1:])


@ppl.meta_bayesian_net
def build_gen(nets, params, n, n_particles=None):
    """p(z) p(x | z) for `n` digits: "z" `[n_particles, n, z_dim]`, "x_mean", "x" `[n_particles, n, 784]`."""
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros([n, nets.z_dim]), std=1., group_ndims=1, n_samples=n_particles)
    logits = _batched(nets.decode, params["decoder"], z)
    bn.deterministic("x_mean", jax.nn.sigmoid(logits))
    bn.bernoulli("x", logits=logits, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q_net(nets, params, x, n_particles=None):
    """q(z | x) for digits `x` `[n, 784]`: "z" normal `[n_particles, n, z_dim]` (group_ndims=1)."""
    bn = ppl.BayesianNet()
    h = nets.encode(params["encoder"], x)
    bn.normal("z", h[..., :nets.z_dim], logstd=h[..., nets.z_dim:], group_ndims=1, n_samples=n_particles)
    return bn


def _elbo(nets, params, key, x, n_particles):
    q = build_q_net(nets, params, x, n_particles).observe(key)
    return inference.elbo(build_gen(nets, params, x.shape[0], n_particles), {"x": x}, variational=q, axis=0)


def fit(key: jax.Array, nets: ConvNets, x_train, *, n_epochs: int, batch_size: int = 128,
        learning_rate: float = 1e-3, is_binarized: bool = False, eval_fn=None, progress_bar: bool = True,
        **fit_options):
    """Trains the conv VAE with SGVB and Adam through `inference.fit`.

    Args:
      key: a JAX PRNG key.
      nets: from `make_networks`; training starts from `nets.params`.
      x_train: `[n_train, 784]` intensities in [0, 1], binarised per batch unless `is_binarized`.
      eval_fn: passed to `inference.fit` (e.g. a test ELBO per epoch).
      fit_options: more `inference.fit` keywords (`checkpoint_dir`, `checkpoint_every`, `resume`).

    Returns:
      `inference.fit`'s `TrainResult`; `history["elbo"]` is the mean minibatch ELBO per epoch.
    """
    initial, nets = nets.params, nets._replace(params=None)  # no arrays baked into the program

    def loss_fn(params, key, x, state):
        key_binarize, key_elbo = jax.random.split(key)
        if not is_binarized:
            x = jax.random.bernoulli(key_binarize, x).astype(jnp.float32)
        cost = jnp.mean(_elbo(nets, params, key_elbo, x, 1).sgvb())
        return cost, (state, {"elbo": -cost})

    return inference.fit(key, loss_fn, initial, optax.adam(learning_rate), jnp.asarray(x_train, jnp.float32),
                         n_epochs=n_epochs, batch_size=batch_size, eval_fn=eval_fn, progress_bar=progress_bar,
                         **fit_options)


def _chunks_fn(nets: ConvNets):
    return _cached_chunks_fn(nets.encode, nets.decode, nets.z_dim)


@functools.lru_cache(maxsize=8)
def _cached_chunks_fn(encode, decode, z_dim):
    nets = ConvNets(None, encode, decode, z_dim)

    @functools.partial(jax.jit, static_argnums=3)
    def chunks(params, key, x_chunks, n_importance):
        def one(inputs):
            key, x = inputs
            model = build_gen(nets, params, x.shape[0], n_importance)
            q = build_q_net(nets, params, x, n_importance).observe(key)
            return (inference.elbo(model, {"x": x}, variational=q, axis=0).value,
                    inference.is_loglikelihood(model, {"x": x}, proposal=q, axis=0))
        return jax.lax.map(one, (jax.random.split(key, x_chunks.shape[0]), x_chunks))
    return chunks


def evaluate(nets: ConvNets, params: dict, key: jax.Array, x, n_importance: int = 1000,
             batch_size: int = 25) -> dict:
    """Test ELBO and importance-sampled log-likelihood (nats per digit) of binary digits `x` `[n, 784]`.

    Returns:
      `{"test_elbo", "test_log_likelihood"}` from the same `n_importance` samples of q per digit.

    Raises:
      ValueError: `x` is not `[n, 784]` with n >= 1, or a non-positive size.
    """
    return vae_variants.evaluate_in_chunks(_chunks_fn(nets), params, key, x, 784, n_importance, batch_size)


def test_elbo_fn(nets: ConvNets, x_test, n_shown: int = 500) -> Callable:
    """`eval_fn(params, key, state) -> {"test_elbo"}` for `inference.fit`: the one-sample ELBO of the
    first `n_shown` test digits `x_test` `[n, 784]` (nats per digit), once per epoch."""
    chunks = _chunks_fn(nets)
    x_shown = jnp.asarray(x_test)[None, :n_shown]

    def eval_fn(params, key, state):
        elbo, _ = chunks(params, key, x_shown, 1)
        return {"test_elbo": jnp.mean(elbo)}

    return eval_fn


def pictures_fn(nets: ConvNets) -> Callable:
    """Jitted `(params, key, x [m, 784]) -> (samples [100, 784], reconstructions [m, 784])` (means)."""
    light = nets._replace(params=None)

    @jax.jit
    def pictures(params, key, x):
        key_prior, key_q, key_gen = jax.random.split(key, 3)
        samples = build_gen(light, params, 100).observe(key_prior)["x_mean"].value
        z = build_q_net(light, params, x).observe(key_q)["z"].value
        return samples, build_gen(light, params, x.shape[0]).observe(key_gen, z=z)["x_mean"].value

    return pictures
