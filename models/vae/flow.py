"""Gaussian VAE whose posterior q(z | x) is refined by a normalizing flow (planar or IAF).

The model, encoder and sizes are `models.vae.model`'s (z ~ N(0, I) with 40 dims, 500-500 ReLU encoder and
decoder). The encoder's diagonal normal q0(z0 | x) is pushed through K flow layers of
`inference.flows`, z_K = f_K(... f_1(z0)), with log q_K(z_K | x) = log q0(z0 | x) - sum_k log |det
df_k / dz|; the pair is handed to the objective as `latent={"z": (z_K, log q_K)}` and the ELBO is
maximised with the reparameterised (SGVB) gradient, learning the flow's parameters together with
the encoder and decoder (Adam, batches of 128, dynamic binarisation, as `models.vae.model`).

* `flow="planar"`: K planar layers z + u tanh(w . z + b) (Rezende and Mohamed 2015).
* `flow="iaf"`: K inverse autoregressive steps, each a one-hidden-layer MADE of `iaf_hidden` ELU
  units with the variable order reversed between steps (Kingma et al. 2016).

The flow parameters are global (shared by all digits), not amortised: the encoder sets q0 per
digit and the flow reshapes it; IAF is used without the encoder context h (optional in Kingma et
al.). Evaluation is `models.vae.model.evaluate`'s with the flow's q: the test ELBO and
`inference.is_loglikelihood` with importance samples from q_K.

Run it with `python -m models vae --flow planar --n-flows 10` or `--flow iaf`, or from Python:

  >>> x = jax.random.bernoulli(jax.random.key(0), mnist.load_mnist_5k().x_test[:256]).astype(jnp.float32)
  >>> result = fit(jax.random.key(1), x, epochs=2, flow="iaf", n_flows=2, is_binarized=True)
  >>> z, log_q = posterior(result.params, jax.random.key(2), x[:10], n_particles=5)  # [5, 10, 40], [5, 10]
  >>> evaluate(result.params, jax.random.key(3), x[:10], n_importance=100)

References:
  Rezende and Mohamed, `Variational Inference with Normalizing Flows
  <https://arxiv.org/abs/1505.05770>`_, 2015.
  Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling, `Improving Variational Inference with
  Inverse Autoregressive Flow <https://arxiv.org/abs/1606.04934>`_, 2016.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

import inference
from inference import flows
from inference.deprecation import renamed_arguments
from models.vae import model as vae
from models.vae import variants as vae_variants
from models.vae._training import check_training_set

__all__ = ["DEFAULT_N_FLOWS", "FLOWS", "evaluate", "fit", "init_params", "loss_fn", "posterior",
           "reconstruct", "refine"]

FLOWS = ("planar", "iaf")
DEFAULT_N_FLOWS = {"planar": 10, "iaf": 4}
Z_DIM, N_HIDDEN = 40, 500


def init_params(key: jax.Array, flow: str = "planar", n_flows: int | None = None, x_dim: int = 784,
                z_dim: int = Z_DIM, n_hidden: int = N_HIDDEN, iaf_hidden: int | None = None) -> dict:
    """`models.vae.model.init_params` plus the flow's parameters under "flow".

    Args:
      key: a JAX PRNG key.
      flow: "planar" or "iaf".
      n_flows: layers (default `DEFAULT_N_FLOWS[flow]`).
      x_dim, z_dim, n_hidden: as in `models.vae.model.init_params`.
      iaf_hidden: MADE hidden units per IAF step (default `4 * z_dim`).

    Returns:
      `{"encoder", "decoder", "flow"}`; "flow" is a `flows.PlanarParams` (initialised near the
      identity, `flows.init_planar`) or `flows.IAFParams` (`flows.init_iaf`, gates near 0.73).

    Raises:
      ValueError: an unknown flow or a non-positive number of layers.
    """
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {FLOWS}, got {flow!r}")
    n_flows = DEFAULT_N_FLOWS[flow] if n_flows is None else n_flows
    if n_flows < 1:
        raise ValueError(f"n_flows must be a positive integer, got {n_flows}")
    key_vae, key_flow = jax.random.split(key)
    params = dict(vae.init_params(key_vae, x_dim, z_dim, n_hidden))
    if flow == "planar":
        params["flow"] = flows.init_planar(key_flow, z_dim, n_flows)
    else:
        params["flow"] = flows.init_iaf(key_flow, z_dim, n_flows, iaf_hidden or 4 * z_dim)
    return params


def refine(flow_params, samples: jax.Array, log_q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Applies the flow in `flow_params` (planar or IAF) to `(samples [*batch, z_dim], log_q [*batch])`.

    Returns:
      `(z_K, log q_K)` with the same shapes (see `inference.flows.planar` / `iaf`).

    Raises:
      TypeError: `flow_params` is neither `flows.PlanarParams` nor `flows.IAFParams`.
    """
    if isinstance(flow_params, flows.PlanarParams):
        return flows.planar(flow_params, samples, log_q)
    if isinstance(flow_params, flows.IAFParams):
        return flows.iaf(flow_params, samples, log_q)
    raise TypeError(f"flow parameters must be flows.PlanarParams or flows.IAFParams, got "
                    f"{type(flow_params).__name__}")


def posterior(params: dict, key: jax.Array, x: jax.Array, n_particles: int | None = None):
    """Samples of the flow's q(z | x) and their log-density.

    Args:
      params: from `init_params`.
      key: a JAX PRNG key (the same key gives `models.vae.model.build_q_net`'s z0).
      x: binary digits `[n, x_dim]`.
      n_particles: samples per digit (a leading axis), or None.

    Returns:
      `(z_K [n_particles, n, z_dim], log q_K [n_particles, n])`, reparameterised in the encoder's
      and the flow's parameters.
    """
    z_dim = _dims(params)[1]
    q = vae.build_q_net(params, x, z_dim, n_particles).observe(key)
    return refine(params["flow"], q["z"].value, q["z"].log_prob)


def _dims(params: dict) -> tuple[int, int]:
    """(x_dim, z_dim) of the decoder in `params`."""
    return params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0]


def _model(params, n, n_particles):
    x_dim, z_dim = _dims(params)
    return vae.build_gen(params, n, x_dim, z_dim, n_particles)


def loss_fn(params: dict, key: jax.Array, x: jax.Array, state=(), n_particles: int = 1):
    """The SGVB cost of the flow VAE (negative ELBO, nats per digit, batch mean).

    Args:
      params: from `init_params`.
      key: a JAX PRNG key.
      x: binary digits `[n, x_dim]`.
      state: passed through (the flow VAE's estimator has no state; `()`).
      n_particles: samples per digit.

    Returns:
      `(cost, (state, elbo))`: the scalar to minimise and the batch's mean ELBO (its negative).
    """
    latent = {"z": posterior(params, key, x, n_particles)}
    cost = jnp.mean(inference.elbo(_model(params, x.shape[0], n_particles), {"x": x}, latent=latent,
                                   axis=0).sgvb())
    return cost, (state, -cost)


@functools.partial(jax.jit, static_argnames="n_importance")
def _evaluate_chunks(params, key, chunks, n_importance):
    def one(inputs):
        key, x = inputs
        model = _model(params, x.shape[0], n_importance)
        latent = {"z": posterior(params, key, x, n_importance)}
        lower_bound = inference.elbo(model, {"x": x}, latent=latent, axis=0).value
        return lower_bound, inference.is_loglikelihood(model, {"x": x}, latent=latent, axis=0)
    return jax.lax.map(one, (jax.random.split(key, chunks.shape[0]), chunks))


def evaluate(params: dict, key: jax.Array, x, n_importance: int = 1000, batch_size: int = 25) -> dict:
    """Test ELBO and importance-sampled log-likelihood with the flow's q (nats per digit).

    As `models.vae.model.evaluate`, with importance samples and densities from q_K (`posterior`).

    Returns:
      `{"test_elbo": float, "test_log_likelihood": float}`.

    Raises:
      ValueError: `x` is not `[n, x_dim]` with n >= 1, or a non-positive size.
    """
    return vae_variants.evaluate_in_chunks(_evaluate_chunks, params, key, x, _dims(params)[0],
                                           n_importance, batch_size)


def _test_elbo(params, key, x_test):
    return evaluate(params, key, x_test, n_importance=1, batch_size=500)["test_elbo"]


def fit(key: jax.Array, x_train, x_test=None, *, flow: str = "planar", n_flows: int | None = None,
        n_epochs: int = 100, batch_size: int = 128, learning_rate: float = 1e-3, z_dim: int = Z_DIM,
        n_hidden: int = N_HIDDEN, n_particles: int = 1, is_binarized: bool = False,
        progress_bar: bool = True, checkpoint_dir=None, checkpoint_every: int = 1, resume=False,
        **deprecated) -> vae_variants.VariantFit:
    """Trains the flow VAE with Adam on SGVB, one jitted `lax.scan` per epoch.

    Args:
      key: a JAX PRNG key.
      x_train: `[n_train, x_dim]` pixel intensities (binarised per batch unless `is_binarized`).
      x_test: optional binary `[n_test, x_dim]`; the one-sample test ELBO is tracked per epoch.
      flow, n_flows: see `init_params`.
      n_epochs, batch_size, learning_rate, z_dim, n_hidden, n_particles: the usual.
      progress_bar, checkpoint_dir, checkpoint_every, resume: as in `inference.fit`.
      **deprecated: `epochs` (use `n_epochs`), `show_progress` (use `progress_bar`).

    Returns:
      A `models.vae.variants.VariantFit` (`state` is `()`).

    Raises:
      ValueError: an unknown flow, fewer training digits than a batch, or `n_epochs < 1`.
    """
    renamed = renamed_arguments(deprecated, {"epochs": "n_epochs", "show_progress": "progress_bar"},
                                "vae.flow.fit")
    n_epochs = renamed.get("n_epochs", n_epochs)
    progress_bar = renamed.get("progress_bar", progress_bar)
    x_train = check_training_set(x_train, batch_size)
    key_init, key_train = jax.random.split(key)
    params = init_params(key_init, flow, n_flows, x_train.shape[1], z_dim, n_hidden)
    loss = functools.partial(loss_fn, n_particles=n_particles)
    return vae_variants.fit(key_train, loss, params, (), x_train, x_test, n_epochs=n_epochs,
                            optimizer=optax.adam(learning_rate),
                            test_elbo_fn=_test_elbo, batch_size=batch_size, is_binarized=is_binarized,
                            progress_bar=progress_bar, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=checkpoint_every, resume=resume)


@jax.jit
def reconstruct(params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """Pixel probabilities `[n, x_dim]` of `x` `[n, x_dim]` decoded from one z ~ q_K(z | x) each."""
    key_q, key_gen = jax.random.split(key)
    z, _ = posterior(params, key_q, x)
    return _model(params, x.shape[0], None).observe(key_gen, z=z)["x_mean"].value


@jax.jit
def pictures(params, key, x):
    key_samples, key_reconstruct = jax.random.split(key)
    return vae.sample_digits(params, key_samples, 100), reconstruct(params, key_reconstruct, x)


