"""flax (nnx, linen) and equinox modules in builders, trained by `fit`; Bayesian layers."""

from __future__ import annotations

import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
import pytest

import inference
import ppl

flax = pytest.importorskip("flax")
equinox = pytest.importorskip("equinox")
from flax import linen, nnx  # noqa: E402


class TinyNet(nnx.Module):
    """x -> tanh(x W1 + b1) W2 + b2."""

    def __init__(self, n_hidden: int, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(1, n_hidden, rngs=rngs)
        self.l2 = nnx.Linear(n_hidden, 1, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


class LinenNet(linen.Module):
    n_hidden: int

    @linen.compact
    def __call__(self, x):
        return linen.Dense(1)(jnp.tanh(linen.Dense(self.n_hidden)(x)))


def make_module(library: str, n_hidden: int = 16):
    key = jax.random.key(0)
    if library == "nnx":
        return ppl.nn.split_module(TinyNet(n_hidden, nnx.Rngs(0)))
    if library == "linen":
        return ppl.nn.split_module(LinenNet(n_hidden), jnp.zeros((1, 1)), key=key)
    mlp = equinox.nn.MLP(1, 1, n_hidden, 1, activation=jnp.tanh, key=key)
    params, apply_fn = ppl.nn.split_module(mlp)
    return params, lambda params, x: jax.vmap(lambda row: apply_fn(params, row))(x)   # eqx maps one row


@ppl.meta_bayesian_net
def regression(apply_fn, params, x):
    """y_i ~ N(net(x_i), 0.1^2): a network inside a model builder."""
    bn = ppl.BayesianNet()
    bn.normal("y", apply_fn(params, x)[:, 0], std=0.1, group_ndims=1)
    return bn


@pytest.mark.parametrize("library", ["nnx", "linen", "equinox"])
def test_modules_in_a_builder_train_through_fit(library):
    x = jnp.linspace(-1, 1, 64)[:, None]
    y = jnp.sin(3 * x[:, 0])
    params, apply_fn = make_module(library)

    def loss_fn(params, key, batch, state):
        x, y = batch
        cost = -regression(apply_fn, params, x).observe(y=y).log_joint() / x.shape[0]
        return cost, (state, {})
    mse = lambda params: float(jnp.mean((apply_fn(params, x)[:, 0] - y) ** 2))  # noqa: E731
    before = mse(params)
    result = inference.fit(jax.random.key(1), loss_fn, params, optax.adam(0.02), (x, y), n_epochs=150,
                           batch_size=16, progress_bar=False)
    # sin(3x) on [-1, 1] is within reach of 16 tanh units: the fit goes from about 0.5 to well under 0.01
    assert before > 0.1 and mse(result.params) < 0.02
    assert jax.tree.structure(result.params) == jax.tree.structure(params)


# ------------------------------------------------------------------------------------ Bayesian layers
NOISE = 0.3


@ppl.meta_bayesian_net
def layer_model(module, x, n_particles=None):
    bn = ppl.BayesianNet()
    net = ppl.nn.random_module(bn, "net", module, prior=1.0, n_samples=n_particles)
    bn.normal("y", net(x)[..., 0], std=NOISE, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def dsl_model(x):
    """The same network written with DSL nodes (in the order of the module's parameter leaves)."""
    bn = ppl.BayesianNet()
    b1 = bn.normal("b1", jnp.zeros(1), std=1.0, group_ndims=1)
    w1 = bn.normal("w1", jnp.zeros((1, 1)), std=1.0, group_ndims=2)
    b2 = bn.normal("b2", jnp.zeros(1), std=1.0, group_ndims=1)
    w2 = bn.normal("w2", jnp.zeros((1, 1)), std=1.0, group_ndims=2)
    bn.normal("y", (jnp.tanh(x @ w1 + b1) @ w2 + b2)[:, 0], std=NOISE, group_ndims=1)
    return bn


NAMES = {"b1": "net.l1.bias", "w1": "net.l1.kernel", "b2": "net.l2.bias", "w2": "net.l2.kernel"}


@pytest.fixture(scope="module")
def data():
    key_x, key_y = jax.random.split(jax.random.key(3))
    x = jax.random.uniform(key_x, (30, 1), minval=-2, maxval=2)
    y = 2 * jnp.tanh(x[:, 0]) + 0.5 + NOISE * jax.random.normal(key_y, (30,))
    return x, y


def test_bayesian_layer_log_joint_equals_the_dsl_model_exactly(data):
    x, y = data
    module = TinyNet(1, nnx.Rngs(0))
    layer = inference.log_joint_fn(layer_model(module, x), {"y": y})
    written = inference.log_joint_fn(dsl_model(x), {"y": y})
    for seed in range(3):
        keys = jax.random.split(jax.random.key(seed), 4)
        point = {name: jax.random.normal(k, (1, 1) if name.startswith("w") else (1,))
                 for name, k in zip(NAMES, keys, strict=True)}
        assert float(layer({NAMES[k]: v for k, v in point.items()})) == float(written(point))
    bn = layer_model(module, x).observe(jax.random.key(0))
    assert [name for name in bn if name != "y"] == list(NAMES.values())
    assert bn["net.l1.kernel"].log_prob.shape == ()              # one number per weight sample


@pytest.mark.slow
def test_bayesian_layer_hmc_posterior_matches_the_dsl_model(data):
    x, y = data
    x_new = jnp.array([[-1.5], [0.0], [1.5]])
    hmc = inference.HMC(step_size=0.05, n_leapfrogs=16, adapt_step_size=True, adapt_mass=True)
    moments = {}
    for label, model, rename in [("layer", layer_model(TinyNet(1, nnx.Rngs(0)), x), NAMES),
                                 ("dsl", dsl_model(x), {k: k for k in NAMES})]:
        samples, _ = hmc.sample(jax.random.key(4), model, {"y": y}, n_samples=800, n_warmup=400, n_chains=4)
        w = {k: np.asarray(samples[rename[k]]) for k in NAMES}
        hidden = np.tanh(np.asarray(x_new)[:, 0] * w["w1"][..., 0] + w["b1"])      # [4, 800, 3]
        f = hidden * w["w2"][..., 0] + w["b2"]
        ess = inference.effective_sample_size(f)
        moments[label] = (f.mean(axis=(0, 1)), f.std(axis=(0, 1)) / np.sqrt(ess))
    # The network's outputs are identified (unlike the weights, which have sign-flip modes); the two
    # posteriors are the same, so the difference of the means is within MCSE: |z| < 4 fails by chance
    # with probability 6e-5 per point.
    (mean_a, mcse_a), (mean_b, mcse_b) = moments["layer"], moments["dsl"]
    assert np.all(np.abs(mean_a - mean_b) / np.hypot(mcse_a, mcse_b) < 4), (mean_a, mean_b, mcse_a, mcse_b)


def test_bayesian_layer_with_mean_field_sgvb_and_sgld(data):
    x, y = data
    module = TinyNet(4, nnx.Rngs(0))
    params, _ = ppl.nn.split_module(module)

    @ppl.meta_bayesian_net
    def q_net(variational_params, n_particles=None):
        bn = ppl.BayesianNet()
        ppl.nn.mean_field(bn, "net", variational_params, n_samples=n_particles)
        return bn

    def loss_fn(variational_params, key, batch, state):
        x, y = batch
        q = q_net(variational_params, 8).observe(key)
        lower_bound = inference.elbo(layer_model(module, x, 8), {"y": y}, variational=q, axis=0)
        return jnp.mean(lower_bound.sgvb()), (state, {"elbo": jnp.mean(lower_bound.value)})
    initial = ppl.nn.init_mean_field(params)
    result = inference.fit(jax.random.key(5), loss_fn, initial, optax.adam(0.02), (x, y), n_epochs=150,
                           batch_size=30, progress_bar=False)
    assert result.history["elbo"][-10:].mean() > result.history["elbo"][:10].mean() + 5
    draws = inference.predictive(jax.random.key(6), layer_model(module, x), variational=q_net(result.params),
                                 n_samples=100, return_nodes="y")
    assert draws["y"].shape == (100, 30) and np.all(np.isfinite(draws["y"]))

    def model_fn(batch):
        return layer_model(module, batch["x"]), {"y": batch["y"]}
    init = {f"net.{name}": value for name, value in
            {"l1.bias": params["l1"]["bias"], "l1.kernel": params["l1"]["kernel"],
             "l2.bias": params["l2"]["bias"], "l2.kernel": params["l2"]["kernel"]}.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sgld = inference.sgmcmc.sample(jax.random.key(7), inference.SGLD(1e-4), model_fn, {"x": x, "y": y},
                                       init, batch_size=30, n_epochs=20, n_chains=2, show_progress=False)
    assert sgld.samples["net.l1.kernel"].shape == (2, 20, 1, 4)
    assert np.all(np.isfinite(sgld.samples["net.l2.kernel"]))


def test_errors_name_the_problem():
    bn = ppl.BayesianNet(key=jax.random.key(0))
    with pytest.raises(ValueError, match="pass a linen module as split_module"):
        ppl.nn.random_module(bn, "net", LinenNet(2), prior=1.0)
    with pytest.raises(ValueError, match="pass key= and example inputs"):
        ppl.nn.split_module(LinenNet(2))
    with pytest.raises(ValueError, match=r"node 'net.l1.bias': the prior has shape \(3,\)"):
        ppl.nn.random_module(bn, "net", TinyNet(2, nnx.Rngs(0)),
                             prior=lambda name, shape: dist.Normal(jnp.zeros(3)))
    with pytest.raises(ValueError, match="a prior distribution must be scalar"):
        ppl.nn.random_module(bn, "net", TinyNet(2, nnx.Rngs(0)), prior=dist.Normal(jnp.zeros(2), 1.0))
    with pytest.raises(TypeError, match="expected a flax nnx or linen module or an equinox module"):
        ppl.nn.split_module(lambda x: x)
    net = ppl.nn.random_module(bn, "laplace", TinyNet(2, nnx.Rngs(0)), prior=dist.Laplace(0.0, 1.0))
    assert isinstance(bn["laplace.l1.kernel"].distribution.base_dist, dist.Laplace) or \
        isinstance(bn["laplace.l1.kernel"].distribution, dist.Laplace)
    assert net(jnp.ones((5, 1))).shape == (5, 1)


def test_importing_ppl_does_not_import_flax_or_equinox():
    code = ("import sys, ppl, inference; "
            "print(sorted(m for m in ('flax', 'equinox', 'orbax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
