"""End-to-end run of `python -m models blr` with small sizes."""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import blr


@pytest.mark.slow
def test_blr_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    parser = argparse.ArgumentParser()
    blr.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--chains", "2", "--samples", "150", "--warmup", "150"])
    assert blr.main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Logistic regression on standardised breast-cancer features reaches ~97% test accuracy; 0.9
    # leaves room for a short run's posterior mean. R-hat 1.1 is the usual convergence threshold.
    assert metrics["accuracy"] > 0.9
    assert metrics["max_r_hat"] < 1.1 and metrics["min_ess"] > 20
    assert len(metrics["posterior_mean"]) == 31 and metrics["ess_per_second"] > 0
    assert (tmp_path / "trace.png").stat().st_size > 0 and (tmp_path / "posterior.png").stat().st_size > 0


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
