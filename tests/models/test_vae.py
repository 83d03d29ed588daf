"""The VAE of the model zoo: node shapes, SGVB training, evaluation bounds (command line: test_commands)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from models.data import mnist
from models.vae import model as vae

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits():
    """64 real test digits, binarised once: `[64, 784]` in {0, 1}."""
    x = mnist.load_mnist_5k().x_test[::15][:64]
    return np.asarray(jax.random.bernoulli(jax.random.key(0), x), np.float32)


def test_nodes_have_zhusuan_shapes():
    params = vae.init_params(jax.random.key(0), z_dim=8, n_hidden=16)
    assert set(params) == {"encoder", "decoder"}
    x = jnp.ones((5, 784))

    def nets(key_q, key_gen, key_prior):  # shapes only: traced by jax.eval_shape, nothing compiled
        q = vae.build_q_net(params, x, z_dim=8, n_particles=3).observe(key_q)
        gen = vae.build_gen(params, 5, z_dim=8, n_particles=3).observe(key_gen, x=x, z=q["z"].value)
        prior = vae.build_gen(params, 4, z_dim=8).observe(key_prior)
        return {"q_z": q["z"].value, "log_q": q["z"].log_prob, "x_mean": gen["x_mean"].value,
                "log_px": gen["x"].log_prob, "log_joint": gen.log_joint(), "prior_z": prior["z"].value,
                "prior_x": prior["x"].value}

    shapes = jax.eval_shape(nets, *jax.random.split(jax.random.key(1), 3))
    assert {k: v.shape for k, v in shapes.items()} == {
        "q_z": (3, 5, 8), "log_q": (3, 5), "x_mean": (3, 5, 784), "log_px": (3, 5), "log_joint": (3, 5),
        "prior_z": (4, 8), "prior_x": (4, 784)}
    with pytest.raises(ValueError, match="z_dim=40"):
        jax.eval_shape(lambda key: vae.build_gen(params, 5).observe(key)["z"].value, jax.random.key(4))
    with pytest.raises(ValueError, match="z_dim=40 needs an encoder with 80 outputs"):
        jax.eval_shape(lambda key: vae.build_q_net(params, x).observe(key)["z"].value, jax.random.key(5))


def test_sgvb_steps_lower_the_loss(digits):
    params = vae.init_params(jax.random.key(0))
    optimizer = optax.adam(1e-3)
    train_step = vae.make_train_step(optimizer)
    opt_state = optimizer.init(params)
    losses = []
    for key in jax.random.split(jax.random.key(1), 31):
        params, opt_state, loss = train_step(params, opt_state, key, digits)
        losses.append(float(loss))  # the loss before each update
    before, after = losses[0], losses[-1]
    assert math.isfinite(after) and after > 0
    # At initialisation the cost is ~ 784 log 2 = 543 nats plus the KL of an untrained q (~590 in
    # all); 30 Adam steps on one batch fit the mean image and bring it to ~230 (seen over 4 seeds).
    # A 200-nat margin is far above the Monte Carlo error of these one-particle, 64-digit estimates
    # (a few nats), so this fails only if training is broken.
    assert after < before - 200, (before, after)
    assert train_step._cache_size() == 1  # one compilation for all 31 steps


def test_evaluate_gives_a_log_likelihood_above_the_elbo(digits):
    # The same shapes as the command-line test below, so the two share one compilation.
    params = vae.init_params(jax.random.key(0))
    x = digits[:30]  # 2 chunks of 25, the last one padded
    scores = vae.evaluate(params, jax.random.key(1), x, n_importance=20)
    assert set(scores) == {"test_elbo", "test_log_likelihood"}
    assert all(math.isfinite(v) for v in scores.values())
    # Both come from the same 20 samples per digit, and log-mean-exp >= mean (Jensen) holds exactly
    # for every digit; 1e-3 nats allows float32 rounding of values of order 500.
    assert scores["test_log_likelihood"] >= scores["test_elbo"] - 1e-3
    assert scores["test_log_likelihood"] > scores["test_elbo"] + 1.0  # an untrained q is far from p(z|x)
    # With one sample, log-mean-exp is the sample itself: the two estimates coincide.
    single = vae.evaluate(params, jax.random.key(1), x, n_importance=1, batch_size=500)
    assert single["test_log_likelihood"] == pytest.approx(single["test_elbo"], abs=1e-3)
    with pytest.raises(ValueError, match=r"x must be \[n, 784\]"):
        vae.evaluate(params, jax.random.key(1), x[:, :10])
    with pytest.raises(ValueError, match="n_train >= batch_size=128"):
        vae.fit(jax.random.key(0), digits[:10], n_epochs=1, progress_bar=False)


def test_fit_trains_through_the_driver_and_warns_on_old_names():
    x = mnist.subset(mnist.load_mnist_5k().x_train, 300)
    with pytest.warns(DeprecationWarning, match="'epochs' is deprecated.*'n_epochs'"):
        result = vae.fit(jax.random.key(0), x, x[:20] > 0.5, epochs=3, z_dim=4, n_hidden=16,
                         progress_bar=False)
    # 3 epochs of 2 batches of 128 digits, every step applied
    assert result.train.history["cost"].shape == (3,) and np.all(result.train.history["n_skipped"] == 0)
    assert len(result.train_elbo) == 3 and np.all(np.isfinite(result.train_elbo))
    assert result.test_elbo.shape == (3,) and np.all(np.isfinite(result.test_elbo))
    np.testing.assert_allclose(result.train_elbo, -result.train.history["cost"], rtol=1e-6)
