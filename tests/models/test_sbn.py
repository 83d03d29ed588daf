"""The sigmoid belief net: node shapes, VIMCO / RWS training steps (its command line: test_commands)."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.iw_objective import iw_objective
from inference.klpq import klpq
from models.data import mnist
from models.vae import sbn


@pytest.fixture(scope="module")
def digits():
    """48 real test digits, binarised once: `[48, 784]` in {0, 1}."""
    x = mnist.load_mnist_5k().x_test[::20][:48]
    return np.asarray(jax.random.bernoulli(jax.random.key(0), x), np.float32)


def test_node_shapes():
    params = sbn.init_params(jax.random.key(0), layers=(6, 5, 4))
    x = jnp.ones((3, 784))

    def nets(key):
        q = sbn.build_q_net(params, x, n_particles=7).observe(key)
        gen = sbn.build_gen(params, 3, n_particles=7).observe(x=x, **{k: v.value for k, v in
                                                                     q.latent_nodes().items()})
        return {name: q[name].value for name in ("z1", "z2", "z3")} | {"log_joint": gen.log_joint(),
                                                                       "x_mean": gen["x_mean"].value}

    shapes = {k: v.shape for k, v in jax.eval_shape(nets, jax.random.key(1)).items()}
    assert shapes == {"z1": (7, 3, 6), "z2": (7, 3, 5), "z3": (7, 3, 4), "log_joint": (7, 3),
                      "x_mean": (7, 3, 784)}


def test_rws_gradient_splits_model_and_q(digits):
    params = sbn.init_params(jax.random.key(1), layers=(8, 8, 8))
    key, x = jax.random.key(2), jnp.asarray(digits[:8])
    grads = jax.jit(jax.grad(sbn.loss_fn), static_argnums=(3, 4))(params, key, x, 4, "rws")

    @jax.jit
    def separate(params):
        model = sbn.build_gen(params, 8, n_particles=4)
        q = sbn.build_q_net(params, x, n_particles=4).observe(key)
        model_grad = jax.grad(lambda p: -jnp.mean(iw_objective(
            sbn.build_gen(p, 8, n_particles=4), {"x": x}, variational=q, axis=0).value))(params)["gen"]
        q_grad = jax.grad(lambda p: jnp.mean(klpq(model, {"x": x}, variational=sbn.build_q_net(
            p, x, n_particles=4).observe(key), axis=0).importance()))(params)["q"]
        return model_grad, q_grad

    model_grad, q_grad = separate(params)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves({"gen": model_grad, "q": q_grad}), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_vimco_training_lowers_the_cost(digits):
    # (RWS training runs in test_commands; its gradient is checked above.)
    result = sbn.fit(jax.random.key(3), digits, method="vimco", n_particles=4, n_epochs=6, batch_size=24,
                     learning_rate=3e-3, progress_bar=False)
    assert result.train_cost.shape == (6,) and np.all(np.isfinite(result.train_cost))
    # From about 543 nats (784 log 2) the output biases alone gain tens of nats in 12 Adam steps.
    assert result.train_cost[-1] < result.train_cost[0] - 10


def test_errors():
    with pytest.raises(ValueError, match="n_particles >= 2"):
        sbn.fit(jax.random.key(4), np.zeros((24, 784)), method="vimco", n_particles=1)
    with pytest.raises(ValueError, match="method"):
        sbn.fit(jax.random.key(4), np.zeros((24, 784)), method="nvil")
    with pytest.warns(DeprecationWarning, match="'k' is deprecated"), pytest.raises(ValueError, match=">= 2"):
        sbn.fit(jax.random.key(4), np.zeros((24, 784)), method="vimco", k=1)
