"""The IWAE model: estimator consistency and a few training steps (its command line: test_commands)."""


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
    result = iwae.fit(jax.random.key(2), digits, n_particles=5, n_epochs=8, batch_size=32, z_dim=8,
                      n_hidden=32, progress_bar=False)
    assert result.train_bound.shape == (8,) and np.all(np.isfinite(result.train_bound))
    # Starting near -543 nats (784 log 2 plus the KL), 16 Adam steps gain tens of nats; the noise of
    # a 32-digit minibatch bound is a few nats.
    assert result.train_bound[-1] > result.train_bound[0] + 10


def test_old_keyword_names_warn_and_map_to_the_new_ones():
    # no training: the renamed arguments reach fit's checks, which then refuse the tiny data set
    with pytest.warns(DeprecationWarning, match="'k' is deprecated.*'n_particles'"), \
            pytest.raises(ValueError, match="n_particles and n_epochs must be positive, got n_particles=0"):
        iwae.fit(jax.random.key(2), np.zeros((10, 784)), k=0)
