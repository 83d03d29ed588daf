"""VAE variants: Bernoulli latents (REINFORCE with baselines, the Concrete relaxation) and flow posteriors."""


import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from inference import flows
from models.data import mnist
from models.vae import discrete as vae_discrete
from models.vae import flow as vae_flow
from models.vae import model as vae

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits():
    """32 real test digits, binarised once: `[32, 784]` in {0, 1}."""
    x = mnist.load_mnist_5k().x_test[::30][:32]
    return np.asarray(jax.random.bernoulli(jax.random.key(0), x), np.float32)


SMALL = {"z_dim": 16, "n_hidden": 32, "batch_size": 8, "n_epochs": 2, "progress_bar": False}  # 4 steps/epoch


def test_reinforce_threads_its_baseline_state(digits):
    result = vae_discrete.fit(jax.random.key(1), digits, digits, latent="bernoulli", baseline="nvil",
                              is_binarized=True, **SMALL)
    assert int(result.state.n_updates) == 8  # one moving-average update per step, carried across epochs
    assert np.isfinite(float(result.state.moving_mean)) and float(result.state.moving_mean) < 0  # an ELBO
    assert np.all(np.isfinite(result.train_elbo)) and np.all(np.isfinite(result.test_elbo))
    with pytest.raises(ValueError, match="baseline must be one of"):
        vae_discrete.fit(jax.random.key(1), digits, latent="bernoulli", baseline="learned", **SMALL)


def test_concrete_trains_and_is_evaluated_as_the_discrete_model(digits):
    concrete = vae_discrete.fit(jax.random.key(1), digits, digits, latent="concrete", temperature=0.5,
                                is_binarized=True, **SMALL)
    assert int(concrete.state.n_updates) == 0  # the relaxation has no score-function state
    assert np.all(np.isfinite(concrete.train_elbo)) and np.all(np.isfinite(concrete.test_elbo))
    # Discrete evaluation of the concrete-trained model (z in {0, 1}): Jensen, as in `_run_cli`.
    scores = vae_discrete.evaluate(concrete.params, jax.random.key(2), digits[:10], n_importance=10)
    assert scores["test_log_likelihood"] >= scores["test_elbo"] - 1e-3


def _constant_encoder(logits):
    """q-net parameters whose encoder outputs `logits` for any 1-pixel input."""
    return {"encoder": [{"w": jnp.zeros((1, logits.shape[0])), "b": logits}]}


def test_concrete_samples_approach_bernoulli_as_temperature_falls():
    logits = jnp.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    params, x, n = _constant_encoder(logits), jnp.zeros((1, 1)), 20000
    probs = np.asarray(jax.nn.sigmoid(logits))
    distances = []
    for i, temperature in enumerate((1.0, 0.3, 0.1, 0.02)):
        q = vae_discrete.build_q_net(params, x, temperature, n_particles=n).observe(jax.random.key(i))
        relaxed = np.asarray(jax.nn.sigmoid(q["z"].value))[:, 0]                     # [n, 5] in (0, 1)
        assert q["z"].log_prob.shape == (n, 1) and np.all(np.isfinite(q["z"].log_prob))
        # Exact at every temperature: sigmoid(y) > 1/2 iff a + Logistic noise > 0, probability
        # sigmoid(a). 20 binomial z-tests at 4.5 standard errors: false-failure rate ~ 1.4e-4.
        stderr = np.sqrt(probs * (1 - probs) / n)
        assert np.all(np.abs(np.mean(relaxed > 0.5, 0) - probs) < 4.5 * stderr), temperature
        distances.append(float(np.mean(np.minimum(relaxed, 1 - relaxed))))
    # The mean distance to the nearest of {0, 1} is about 2 log 2 T f(-a) <= 0.35 T (f the logistic
    # density): ~0.2 at T = 1, below 0.007 at T = 0.02. Its Monte Carlo error is below 0.004
    # (values in [0, 1/2], 10^5 draws), far smaller than the gaps between these temperatures.
    assert all(a > b for a, b in zip(distances[:-1], distances[1:], strict=True)), distances
    assert distances[-1] < 0.02 and distances[0] > 0.1, distances


def test_relaxed_log_odds_density_is_bin_concrete_through_the_logit():
    # y ~ Logistic(a / T, 1 / T) is BinConcrete(T, a) pushed through logit: with s = sigmoid(y),
    # log q(y) = log BinConcrete(s) + log s + log(1 - s). In float64 the two agree to rounding.
    with jax.enable_x64(True):
        logits = jnp.array([-2.0, -0.5, 0.0, 1.0, 3.0], jnp.float64)
        params, x = _constant_encoder(logits), jnp.zeros((1, 1), jnp.float64)
        for temperature in (1.0, 0.5, 0.2):
            q = vae_discrete.build_q_net(params, x, temperature, n_particles=50).observe(jax.random.key(3))
            y = q["z"].value[:, 0]                                                   # [50, 5]
            per_unit = q["z"].distribution.log_prob(q["z"].value)[:, 0]              # [50, 5]
            np.testing.assert_allclose(q["z"].log_prob[:, 0], jnp.sum(per_unit, -1), rtol=1e-12)
            keep = np.abs(np.asarray(y)) < 20  # away from float64 saturation of s (error < 1e-7 there)
            assert keep.sum() >= 100
            s = jax.nn.sigmoid(y[keep])
            bin_concrete = dist.RelaxedBernoulliLogits(temperature, jnp.broadcast_to(logits, y.shape)[keep])
            direct = bin_concrete.log_prob(s) + jnp.log(s) + jnp.log1p(-s)
            np.testing.assert_allclose(np.asarray(per_unit)[keep], direct, rtol=1e-6, atol=1e-6)


def _identity_flow(params, flow):
    if flow == "planar":  # w = 0, b = 0: f(z) = z + u tanh(0) = z and log |det| = log 1, exactly
        return params["flow"]._replace(w=jnp.zeros_like(params["flow"].w), b=jnp.zeros_like(params["flow"].b))
    # Gates sigmoid(30) = 1 in float32: z <- z, log |det| = log sigmoid(30) ~ -1e-13 per unit.
    return params["flow"]._replace(b_scale=jnp.full_like(params["flow"].b_scale, 30.0))


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_identity_flow_gives_the_plain_vae(digits, flow):
    params = vae_flow.init_params(jax.random.key(4), flow, n_flows=2, z_dim=4, n_hidden=16)
    params["flow"] = _identity_flow(params, flow)
    key, x = jax.random.key(5), jnp.asarray(digits[:8])
    # Same key, same z0: the flow VAE's cost is the plain VAE's (nats of order 500; float32 rounding).
    both = jax.jit(lambda params: (vae_flow.loss_fn(params, key, x, (), n_particles=3),
                                   vae.loss_fn(params, key, x, n_particles=3)))
    (cost, (_, elbo)), plain_cost = both(params)
    np.testing.assert_allclose(cost, plain_cost, rtol=1e-5)
    assert float(elbo) == pytest.approx(-float(cost))
    if flow == "planar":  # the evaluation path too (once: each evaluate compiles its own program)
        flowed, plain = (module.evaluate(params, jax.random.key(6), digits[:10], n_importance=7)
                         for module in (vae_flow, vae))
        for name in ("test_elbo", "test_log_likelihood"):
            assert flowed[name] == pytest.approx(plain[name], rel=1e-5), name


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_flow_posterior_density_integrates_to_one(flow):
    # q_K(f(z0)) times the area of the image of a grid cell, summed over a grid covering the base
    # N(0, I) mass, must be 1. The cell areas come from central differences of the map itself (not
    # from the flow's log-determinant), so a wrong Jacobian term shows. Float64: the midpoint rule
    # on [-7, 7]^2 with h = 0.05 and differences with step 1e-5 are accurate to ~1e-9 for these
    # smooth maps (errors of ~1e-11 seen); the mass outside the box is ~1e-11. Tolerance 1e-6.
    with jax.enable_x64(True):
        key_flow, key_b = jax.random.split(jax.random.key(7))
        if flow == "planar":
            params = flows.init_planar(key_flow, 2, 3, scale=2.0)
            params = params._replace(b=jax.random.normal(key_b, (3,)))
        else:
            params = flows.init_iaf(key_flow, 2, 2, hidden=8)
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        h, delta = 0.05, 1e-5
        grid = jnp.arange(-7 + h / 2, 7, h)
        z0 = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)      # [n, 2]

        @jax.jit
        def flowed(z0):
            log_q0 = jnp.sum(jax.scipy.stats.norm.logpdf(z0), -1)
            z_k, log_q_k = vae_flow.refine(params, z0, log_q0)
            steps = jnp.array([[delta, 0.0], [0.0, delta]])
            d1, d2 = ((vae_flow.refine(params, z0 + step, log_q0)[0]
                       - vae_flow.refine(params, z0 - step, log_q0)[0]) / (2 * delta) for step in steps)
            area = jnp.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) * h**2
            return z_k, log_q_k, log_q0, area

        z_k, log_q_k, log_q0, area = flowed(z0)
        assert z_k.shape == z0.shape
        assert float(jnp.sum(jnp.exp(log_q_k) * area)) == pytest.approx(1.0, abs=1e-6)
        # The flow is far from the identity: without its Jacobian term the sum is off by over 50%
        # (1.81 planar, 0.28 IAF here).
        assert abs(float(jnp.sum(jnp.exp(log_q0) * area)) - 1.0) > 0.5
