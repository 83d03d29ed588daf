"""The IWAE model: estimator consistency, a few training steps, and the command line."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.data import mnist
from models.vae import iwae
from models.vae import model as vae


@pytest.fixture(scope="module")
def digits():
    """64 real test digits, binarised once: `[64, 784]` in {0, 1}."""
    x = mnist.load_mnist_5k().x_test[::15][:64]
    return np.asarray(jax.random.bernoulli(jax.random.key(0), x), np.float32)


def test_dreg_and_iwae_share_value_and_decoder_gradient(digits):
    params = vae.init_params(jax.random.key(0), z_dim=8, n_hidden=32)
    key, x = jax.random.key(1), jnp.asarray(digits[:16])

    @jax.jit
    def both(params):
        return [jax.value_and_grad(iwae.loss_fn)(params, key, x, 5, estimator)
                for estimator in ("iwae", "dreg")]

    (loss_iwae, grad_iwae), (loss_dreg, grad_dreg) = both(params)
    np.testing.assert_allclose(loss_iwae, loss_dreg, rtol=1e-6)
    # Same samples: DReG changes only the encoder's gradient, the decoder's is the IWAE one.
    leaves = {part: (jax.tree.leaves(grad_iwae[part]), jax.tree.leaves(grad_dreg[part]))
              for part in ("decoder", "encoder")}
    for a, b in zip(*leaves["decoder"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    difference = sum(float(jnp.sum(jnp.abs(a - b))) for a, b in zip(*leaves["encoder"], strict=True))
    assert difference > 0
    with pytest.raises(ValueError, match="estimator"):
        iwae.loss_fn(params, key, x, 5, "reinforce")


def test_training_raises_the_bound(digits):
    result = iwae.fit(jax.random.key(2), digits, k=5, epochs=8, batch_size=32, z_dim=8, n_hidden=32,
                      show_progress=False)
    assert result.train_bound.shape == (8,) and np.all(np.isfinite(result.train_bound))
    # Starting near -543 nats (784 log 2 plus the KL), 16 Adam steps gain tens of nats; the noise of
    # a 32-digit minibatch bound is a few nats.
    assert result.train_bound[-1] > result.train_bound[0] + 10


def test_command_line_writes_metrics(tmp_path):
    parser = argparse.ArgumentParser()
    iwae.add_arguments(parser)
    args = parser.parse_args(["--k", "5", "--epochs", "1", "--n-train", "100", "--batch-size", "50",
                              "--n-test", "4", "--n-importance", "20", "--out", str(tmp_path), "--quiet",
                              "--data-dir", ""])
    assert iwae.main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["k"] == 5 and metrics["dataset"] == "mnist_5k" and metrics["n_importance"] == 20
    assert metrics["test_elbo"] <= metrics["test_log_likelihood"] < 0
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "bound.png").stat().st_size > 0
