"""End-to-end run of `python -m models blr` with small sizes."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import blr


def test_load_breast_cancer_is_standardised():
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = blr.load_breast_cancer(0)
    assert x_train.shape == (455, 31) and x_test.shape == (114, 31)
    assert abs(float(x_train[:, :-1].mean())) < 1e-5 and (x_train[:, -1] == 1).all()
    assert set(y_train.tolist()) == {0.0, 1.0}


def test_blr_log_joint_matches_hand_written():
    # the feature-major model must compute x @ w: compare its log-joint with the plain formula
    from inference.log_joint import make_log_joint

    key_x, key_w, key_y = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (50, 4))
    w = jax.random.normal(key_w, (4,))
    y = jax.random.bernoulli(key_y, 0.5, (50,)).astype(jnp.float32)
    model = make_log_joint(blr.build_blr(x, alpha=2.0), {"y": y})
    logits = x @ w
    expected = (jnp.sum(y * logits - jnp.logaddexp(0.0, logits))
                + jnp.sum(jax.scipy.stats.norm.logpdf(w, 0.0, 2.0)))
    np.testing.assert_allclose(model.log_joint_fn({"w": w}), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        blr.build_blr(jnp.ones(5))


def test_test_probs_node_is_the_predictive_probability():
    # the deterministic node sample() returns equals sigmoid(x_test @ w) at the model's own w
    key_x, key_t, key_obs = jax.random.split(jax.random.key(1), 3)
    x, x_test = jax.random.normal(key_x, (30, 4)), jax.random.normal(key_t, (7, 4))
    bn = blr.build_blr(x, x_test=x_test).observe(key_obs)
    expected = jax.nn.sigmoid(x_test @ bn["w"].value)
    np.testing.assert_allclose(bn["test_probs"].value, expected, rtol=1e-5)
    assert blr.accuracy(np.broadcast_to(np.asarray(expected), (2, 3, 7)), np.asarray(expected) > 0.5) == 1.0
    with pytest.raises(ValueError, match=r"x_test must have shape \[m, 4\]"):
        blr.build_blr(x, x_test=jnp.ones((7, 3)))
