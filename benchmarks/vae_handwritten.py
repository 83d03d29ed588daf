"""The VAE of `models.vae.model` written in plain JAX + optax, with no DSL: the benchmarks' baseline.

Same architecture, parameters and estimator as `models.vae.model`: z ~ N(0, I) (40 dims), x | z ~
Bernoulli(logits = decoder(z)), q(z | x) = N(mean, exp(logstd)^2) from the encoder, the one-sample
(SGVB) ELBO averaged over the batch, Adam 1e-3. The parameter pytree is exactly
`models.vae.model.init_params`'s (`{"encoder": [...], "decoder": [...]}`, lists of `{"w", "b"}` layers,
the encoder's output split as `[mean | logstd]`), and the reparameterisation noise is drawn with
the same key as the DSL draws node "z" (`ppl.node_key(key, "z")`), so the same parameters and key
give the same loss and gradients up to float rounding. This is what an experienced JAX user writes
by hand: log q(z | x) is computed from the noise `eps` directly (`-eps^2 / 2 - logstd - log(2 pi)/2`),
which is the same function of the parameters as the DSL's `Normal(mean, std).log_prob(z)`.

References:
  Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
  Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, 2015 (importance-sampled log-likelihood).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import optax

from ppl import node_key  # only the key derivation, so both programs draw the same noise

__all__ = ["evaluate", "log_weights", "loss_fn", "make_epoch", "make_train_step"]

_LOG_2PI = math.log(2 * math.pi)


def _mlp(layers: list[dict], x: jax.Array) -> jax.Array:
    for layer in layers[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def log_weights(params: dict, key: jax.Array, x: jax.Array, n_particles: int) -> jax.Array:
    """log p(x, z) - log q(z | x) for `n_particles` reparameterised samples z ~ q(z | x).

    Args:
      params: `models.vae.model.init_params` layout.
      key: a JAX PRNG key (the noise uses `ppl.node_key(key, "z")`, as the DSL does).
      x: binary digits `[n, x_dim]`.
      n_particles: samples per digit.

    Returns:
      Log importance weights in nats, shape `[n_particles, n]`.
    """
    z_dim = params["decoder"][0]["w"].shape[0]
    h = _mlp(params["encoder"], x)
    mean, logstd = h[..., :z_dim], h[..., z_dim:]
    eps = jax.random.normal(node_key(key, "z"), (n_particles, *mean.shape))
    z = mean + eps * jnp.exp(logstd)
    logits = _mlp(params["decoder"], z)
    log_px_z = jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)
    log_pz = jnp.sum(-0.5 * z**2 - 0.5 * _LOG_2PI, axis=-1)
    log_qz = jnp.sum(-0.5 * eps**2 - logstd - 0.5 * _LOG_2PI, axis=-1)
    return log_px_z + log_pz - log_qz


def loss_fn(params: dict, key: jax.Array, x: jax.Array, n_particles: int = 1) -> jax.Array:
    """Negative ELBO (nats per digit) averaged over the batch `x` `[n, x_dim]`: a scalar to minimise."""
    return -jnp.mean(log_weights(params, key, x, n_particles))


def make_train_step(optimizer: optax.GradientTransformation, n_particles: int = 1):
    """A jitted SGVB step `train_step(params, opt_state, key, x) -> (params, opt_state, loss)`."""

    @jax.jit
    def train_step(params, opt_state, key, x):
        loss, grads = jax.value_and_grad(loss_fn)(params, key, x, n_particles)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def make_epoch(train_step, batch_size: int = 128):
    """A jitted epoch `epoch(params, opt_state, key, x_train) -> (params, opt_state, losses)`.

    The epoch of both VAE contenders (DSL and hand-written step alike): permute `x_train`
    `[n_train, x_dim]` (intensities in [0, 1]), drop the ragged last batch, binarise each batch
    with Bernoulli draws, and `lax.scan` `train_step` over the `n_train // batch_size` batches.
    `train_step` can be any `(params, opt_state, key, x) -> (params, opt_state, loss)` step, so
    the DSL and the hand-written VAE are fed exactly the same batches.
    """

    @jax.jit
    def epoch(params, opt_state, key, x_train):
        n_batches = x_train.shape[0] // batch_size
        key_order, key_steps = jax.random.split(key)
        order = jax.random.permutation(key_order, x_train.shape[0])[: n_batches * batch_size]

        def body(carry, inputs):
            key, index = inputs
            key_binarize, key_loss = jax.random.split(key)
            x = jax.random.bernoulli(key_binarize, x_train[index]).astype(x_train.dtype)
            params, opt_state, loss = train_step(*carry, key_loss, x)
            return (params, opt_state), loss

        inputs = (jax.random.split(key_steps, n_batches), order.reshape(n_batches, batch_size))
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), inputs)
        return params, opt_state, losses

    return epoch


@functools.partial(jax.jit, static_argnames="n_importance")
def _evaluate_chunks(params, key, chunks, n_importance):
    def chunk(inputs):
        key, x = inputs
        log_w = log_weights(params, key, x, n_importance)
        max_w = jax.lax.stop_gradient(jnp.max(log_w, axis=0))
        log_mean_exp = max_w + jnp.log(jnp.mean(jnp.exp(log_w - max_w), axis=0))
        return jnp.mean(log_w, axis=0), log_mean_exp

    return jax.lax.map(chunk, (jax.random.split(key, chunks.shape[0]), chunks))


def evaluate(params: dict, key: jax.Array, x, n_importance: int = 1000, batch_size: int = 25,
             per_digit: bool = False) -> dict:
    """Test ELBO and importance-sampled log-likelihood (nats per digit), as `models.vae.model.evaluate`.

    Both use the same `n_importance` samples z ~ q(z | x) per digit: the ELBO is the mean log
    weight, the log-likelihood the log-mean-exp of the weights (max-shifted, so stable), processed
    `batch_size` digits at a time in one jitted `lax.map` (the last chunk zero-padded).

    Args:
      params: `models.vae.model.init_params` layout.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      n_importance: samples per digit.
      batch_size: digits per chunk.
      per_digit: also return the per-digit values (`elbo_per_digit`, `log_likelihood_per_digit`,
        `[n]` arrays), e.g. for standard errors.

    Returns:
      `{"test_elbo": float, "test_log_likelihood": float}` (means over the n digits).

    Raises:
      ValueError: `x` is not `[n, x_dim]` with n >= 1, or a non-positive size.
    """
    x = jnp.asarray(x, jnp.float32)
    x_dim = params["decoder"][-1]["w"].shape[1]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != x_dim:
        raise ValueError(f"evaluate: x must be [n, {x_dim}] with n >= 1, got shape {x.shape}")
    if n_importance < 1 or batch_size < 1:
        raise ValueError(f"n_importance and batch_size must be positive, got {n_importance}, {batch_size}")
    n = x.shape[0]
    batch_size = min(batch_size, n)
    n_chunks = math.ceil(n / batch_size)
    padded = jnp.concatenate([x, jnp.zeros((n_chunks * batch_size - n, x_dim), x.dtype)])
    elbo, log_likelihood = _evaluate_chunks(params, key, padded.reshape(n_chunks, batch_size, x_dim),
                                            n_importance)
    elbo, log_likelihood = elbo.reshape(-1)[:n], log_likelihood.reshape(-1)[:n]
    scores = {"test_elbo": float(jnp.mean(elbo)), "test_log_likelihood": float(jnp.mean(log_likelihood))}
    if per_digit:
        scores.update(elbo_per_digit=elbo, log_likelihood_per_digit=log_likelihood)
    return scores
