"""VAE with Bernoulli latents, trained by REINFORCE with baselines or by the binary Concrete relaxation.

The generative model is z ~ Bernoulli(sigmoid(a)) with 200 binary units and learned prior log-odds
`a`, x | z ~ Bernoulli(logits = MLP(z)) with a 500-500 ReLU decoder; q(z | x) is a factorised
Bernoulli whose log-odds come from a 500-500 ReLU encoder (the sizes of `models.vae.model`, with the 200
binary units of the discrete-VAE literature). Two ways to train it:

* `latent="bernoulli"`: the ELBO's score-function (REINFORCE) gradient for the encoder and its
  pathwise gradient for the decoder and prior, `inference.elbo(...).reinforce(state, ...)`, with the
  learning signal centred by a moving average (state in, state out) and, with `baseline="nvil"`,
  by a learned input-dependent baseline b(x), a 784-100-1 ReLU MLP trained on the returned
  regression cost (NVIL, Mnih and Gregor 2014).
* `latent="concrete"`: every Bernoulli of q and of the prior is replaced by its binary Concrete
  relaxation at `temperature` and the relaxed ELBO is maximised with the reparameterised (SGVB)
  gradient (Maddison et al. 2017; Jang et al. 2017's Gumbel-softmax). The relaxed latents are
  represented by their log-odds y (node "z"), y ~ Logistic(a / T, 1 / T), and the decoder reads
  sigmoid(y): this is exactly `bin_concrete(T, a)` pushed through the logit, the form Maddison et
  al. (appendix C) recommend because densities of sigmoid(y) saturate in float32 at low T. The KL
  between the relaxed q and the relaxed prior is the same in either parameterisation.

Evaluation always uses the discrete model: the test ELBO and the importance-sampled test
log-likelihood (`inference.is_loglikelihood`) with samples from the discrete Bernoulli q(z | x),
also for a model trained through the relaxation (the standard protocol of Maddison et al.).

Run it with `python -m models vae --latent bernoulli` or `--latent concrete --temperature 0.5`,
or from Python:

  >>> x = jax.random.bernoulli(jax.random.key(0), mnist.load_mnist_5k().x_test[:256]).astype(jnp.float32)
  >>> result = fit(jax.random.key(1), x, epochs=2, latent="bernoulli", baseline="nvil", is_binarized=True)
  >>> evaluate(result.params, jax.random.key(2), x[:10], n_importance=100)  # {"test_elbo": ..., ...}

References:
  Williams, `Simple statistical gradient-following algorithms for connectionist reinforcement
  learning <https://doi.org/10.1007/BF00992696>`_, 1992.
  Mnih and Gregor, `Neural Variational Inference and Learning in Belief Networks
  <https://arxiv.org/abs/1402.0030>`_, 2014.
  Maddison, Mnih and Teh, `The Concrete Distribution: A Continuous Relaxation of Discrete Random
  Variables <https://arxiv.org/abs/1611.00712>`_, 2017.
  Jang, Gu and Poole, `Categorical Reparameterization with Gumbel-Softmax
  <https://arxiv.org/abs/1611.01144>`_, 2017.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
import optax

import inference
import ppl
from inference.deprecation import renamed_arguments
from inference.estimators import ReinforceState
from models import nn
from models.vae import variants as vae_variants
from models.vae._training import check_training_set

__all__ = ["BASELINES", "DEFAULT_EPOCHS", "LATENTS", "build_gen", "build_q_net", "evaluate", "fit",
           "init_params", "loss_fn", "reconstruct", "sample_digits"]

LATENTS = ("bernoulli", "concrete")
BASELINES = ("nvil", "moving_average", "none")
DEFAULT_EPOCHS = {"mnist_5k": 100, "mnist": 10, "binarized_mnist": 10}
Z_DIM, N_HIDDEN, N_BASELINE_HIDDEN = 200, 500, 100


def init_params(key: jax.Array, x_dim: int = 784, z_dim: int = Z_DIM, n_hidden: int = N_HIDDEN,
                n_baseline_hidden: int = N_BASELINE_HIDDEN) -> dict:
    """Encoder, decoder, prior log-odds and NVIL baseline parameters.

    Returns:
      `{"encoder": MLP x_dim -> n_hidden -> n_hidden -> z_dim (log-odds of q),
      "decoder": MLP z_dim -> n_hidden -> n_hidden -> x_dim (Bernoulli logits),
      "prior_logits": zeros [z_dim], "baseline": MLP x_dim -> n_baseline_hidden -> 1}`
      (MLPs as in `models.nn`).
    """
    return _init_params(key, int(x_dim), int(z_dim), int(n_hidden), int(n_baseline_hidden))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init_params(key, x_dim, z_dim, n_hidden, n_baseline_hidden):
    key_encoder, key_decoder, key_baseline = jax.random.split(key, 3)
    return {"encoder": nn.init_mlp(key_encoder, [x_dim, n_hidden, n_hidden, z_dim]),
            "decoder": nn.init_mlp(key_decoder, [z_dim, n_hidden, n_hidden, x_dim]),
            "prior_logits": jnp.zeros((z_dim,), jnp.float32),
            "baseline": nn.init_mlp(key_baseline, [x_dim, n_baseline_hidden, 1])}


def _dims(params: dict) -> tuple[int, int]:
    """(x_dim, z_dim) of the decoder in `params`."""
    return params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0]


def _latent(bn: ppl.BayesianNet, logits: jax.Array, temperature, n_particles) -> jax.Array:
    """Adds node "z" (discrete, or relaxed log-odds) and returns the decoder's input in [0, 1]."""
    if temperature is None:
        z = bn.bernoulli("z", logits=logits, group_ndims=1, n_samples=n_particles)
        return z.astype(jnp.float32)
    log_odds = bn.stochastic("z", dist.Logistic(logits / temperature, 1.0 / temperature), group_ndims=1,
                             n_samples=n_particles)
    return jax.nn.sigmoid(log_odds)


def _check_temperature(temperature) -> None:
    if temperature is not None and not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number or None (discrete), got {temperature!r}")


@ppl.meta_bayesian_net
def build_gen(params, n, temperature=None, n_particles=None):
    """The generative model p(z) p(x | z) for `n` digits.

    Args:
      params: from `init_params`.
      n: how many digits.
      temperature: None for discrete z; a positive float for the binary Concrete relaxation.
      n_particles: samples of z per digit (a leading axis), or None.

    Nodes: "z" `[n_particles, n, z_dim]` (group_ndims=1): Bernoulli(logits=prior_logits) in {0, 1},
    or with `temperature` the relaxed log-odds y ~ Logistic(prior_logits / T, 1 / T); "x_mean" the
    decoder's pixel probabilities `[n_particles, n, x_dim]`; "x" Bernoulli (group_ndims=1).

    Raises:
      ValueError: a non-positive temperature.
    """
    _check_temperature(temperature)
    bn = ppl.BayesianNet()
    logits = jnp.broadcast_to(params["prior_logits"], (n, params["prior_logits"].shape[0]))
    z = _latent(bn, logits, temperature, n_particles)
    x_logits = nn.mlp(params["decoder"], z)
    bn.deterministic("x_mean", jax.nn.sigmoid(x_logits))
    bn.bernoulli("x", logits=x_logits, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q_net(params, x, temperature=None, n_particles=None):
    """The variational posterior q(z | x): factorised Bernoulli (or its relaxation) from the encoder.

    Args:
      params: from `init_params`.
      x: binary digits `[n, x_dim]`.
      temperature, n_particles: as in `build_gen`.

    Nodes: "z" `[n_particles, n, z_dim]` (group_ndims=1), discrete and not reparameterised (so
    REINFORCE applies), or relaxed log-odds, reparameterised.

    Raises:
      ValueError: a non-positive temperature.
    """
    _check_temperature(temperature)
    bn = ppl.BayesianNet()
    _latent(bn, nn.mlp(params["encoder"], x), temperature, n_particles)
    return bn


def _check_method(latent: str, baseline: str) -> None:
    if latent not in LATENTS:
        raise ValueError(f"latent must be one of {LATENTS}, got {latent!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")


def loss_fn(params: dict, key: jax.Array, x: jax.Array, state: ReinforceState, *, latent: str = "bernoulli",
            baseline: str = "nvil", temperature: float = 0.5, n_particles: int = 1):
    """Surrogate cost (nats per digit, batch mean) whose gradient trains every parameter.

    Args:
      params: from `init_params`.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      state: the `ReinforceState` from the previous step (`inference.reinforce_init()` at the
        start; passed through unchanged by the concrete relaxation).
      latent: "bernoulli" (REINFORCE) or "concrete" (relaxed SGVB at `temperature`).
      baseline: for REINFORCE, "nvil" (moving average and learned b(x)), "moving_average", or
        "none" (no variance reduction).
      temperature: the relaxation's temperature (concrete only).
      n_particles: samples of z per digit.

    Returns:
      `(cost, (state, elbo))`: the scalar cost to minimise (for REINFORCE with "nvil", plus the
      baseline's regression cost, whose gradient reaches only the baseline network), the updated
      state and the batch's mean ELBO (of the relaxed model for "concrete"), in nats.

    Raises:
      ValueError: an unknown `latent` or `baseline`, or a non-positive temperature.
    """
    _check_method(latent, baseline)
    temperature = temperature if latent == "concrete" else None
    model = build_gen(params, x.shape[0], temperature, n_particles)
    q = build_q_net(params, x, temperature, n_particles).observe(key)
    lower_bound = inference.elbo(model, {"x": x}, variational=q, axis=0)
    elbo = jnp.mean(lower_bound.value)
    if latent == "concrete":
        return jnp.mean(lower_bound.sgvb()), (state, elbo)
    b = nn.mlp(params["baseline"], x)[..., 0] if baseline == "nvil" else None
    result = lower_bound.reinforce(state, variance_reduction=baseline != "none", baseline=b)
    return jnp.mean(result.cost + result.baseline_cost), (result.state, elbo)


@functools.partial(jax.jit, static_argnames="n_importance")
def _evaluate_chunks(params, key, chunks, n_importance):
    def one(inputs):
        key, x = inputs
        model = build_gen(params, x.shape[0], n_particles=n_importance)
        q = build_q_net(params, x, n_particles=n_importance).observe(key)
        lower_bound = inference.elbo(model, {"x": x}, variational=q, axis=0).value
        return lower_bound, inference.is_loglikelihood(model, {"x": x}, proposal=q, axis=0)
    return jax.lax.map(one, (jax.random.split(key, chunks.shape[0]), chunks))


def evaluate(params: dict, key: jax.Array, x, n_importance: int = 1000, batch_size: int = 25) -> dict:
    """Test ELBO and importance-sampled log-likelihood of the discrete model (nats per digit).

    Both use the same `n_importance` samples per digit of the discrete q(z | x) (also for a model
    trained through the relaxation): the ELBO is the mean log weight, the log-likelihood their
    log-mean-exp (Burda et al. 2015). `batch_size` digits at a time in one jitted `lax.map`.

    Args:
      params: from `init_params` / `fit`.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      n_importance, batch_size: samples per digit and digits per chunk.

    Returns:
      `{"test_elbo": float, "test_log_likelihood": float}`.

    Raises:
      ValueError: `x` is not `[n, x_dim]` with n >= 1, or a non-positive size.
    """
    return vae_variants.evaluate_in_chunks(_evaluate_chunks, params, key, x, _dims(params)[0], n_importance,
                                           batch_size)


def _test_elbo(params, key, x_test):
    return evaluate(params, key, x_test, n_importance=1, batch_size=500)["test_elbo"]


def fit(key: jax.Array, x_train, x_test=None, *, latent: str = "bernoulli", baseline: str = "nvil",
        temperature: float = 0.5, n_epochs: int = 100, batch_size: int = 128, learning_rate: float = 1e-3,
        z_dim: int = Z_DIM, n_hidden: int = N_HIDDEN, n_particles: int = 1, is_binarized: bool = False,
        progress_bar: bool = True, checkpoint_dir=None, checkpoint_every: int = 1, resume=False,
        **deprecated) -> vae_variants.VariantFit:
    """Trains the binary-latent VAE with Adam, one jitted `lax.scan` per epoch.

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, x_dim]` pixel intensities (binarised per batch unless `is_binarized`).
      x_test: optional binary `[n_test, x_dim]`; the discrete model's one-sample test ELBO is
        tracked per epoch.
      latent, baseline, temperature, n_particles: see `loss_fn`.
      n_epochs, batch_size, learning_rate, z_dim, n_hidden: the usual.
      progress_bar, checkpoint_dir, checkpoint_every, resume: as in `inference.fit`.
      **deprecated: `epochs` (use `n_epochs`), `show_progress` (use `progress_bar`).

    Returns:
      A `models.vae.variants.VariantFit` (its `state` the final `ReinforceState`).

    Raises:
      ValueError: bad options (see `loss_fn`), fewer training digits than a batch, `n_epochs < 1`.
    """
    renamed = renamed_arguments(deprecated, {"epochs": "n_epochs", "show_progress": "progress_bar"},
                                "vae.discrete.fit")
    n_epochs = renamed.get("n_epochs", n_epochs)
    progress_bar = renamed.get("progress_bar", progress_bar)
    _check_method(latent, baseline)
    _check_temperature(temperature)
    x_train = check_training_set(x_train, batch_size)
    loss = functools.partial(loss_fn, latent=latent, baseline=baseline, temperature=temperature,
                             n_particles=n_particles)
    key_init, key_train = jax.random.split(key)
    params = init_params(key_init, x_train.shape[1], z_dim, n_hidden)
    return vae_variants.fit(key_train, loss, params, inference.reinforce_init(), x_train, x_test,
                            n_epochs=n_epochs, optimizer=optax.adam(learning_rate), test_elbo_fn=_test_elbo,
                            batch_size=batch_size, is_binarized=is_binarized, progress_bar=progress_bar,
                            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume)


@functools.partial(jax.jit, static_argnums=2)
def sample_digits(params: dict, key: jax.Array, n: int) -> jax.Array:
    """Pixel probabilities `[n, x_dim]` of `n` digits generated from the discrete prior."""
    return build_gen(params, n).observe(key)["x_mean"].value


@jax.jit
def reconstruct(params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """Pixel probabilities `[n, x_dim]` of `x` `[n, x_dim]` decoded from one discrete z ~ q(z | x) each."""
    key_q, key_gen = jax.random.split(key)
    z = build_q_net(params, x).observe(key_q)["z"].value
    return build_gen(params, x.shape[0]).observe(key_gen, z=z)["x_mean"].value


@jax.jit
def pictures(params, key, x):
    key_samples, key_reconstruct = jax.random.split(key)
    return sample_digits(params, key_samples, 100), reconstruct(params, key_reconstruct, x)


