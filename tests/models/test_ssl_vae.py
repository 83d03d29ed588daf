"""The semi-supervised VAE (M2): bounds' shapes, label enumeration and a short run of the command."""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models.__main__
from models.vae import ssl


def test_bounds_have_per_digit_shapes():
    """L `[n_l]`, U `[n_u]` (y summed out, no label axis left) and log q(y | x) `[n_l]` (traced only)."""
    params = ssl.init_params(jax.random.key(0), x_dim=12, z_dim=3, n_hidden=8)
    x = jnp.asarray(np.random.RandomState(0).rand(4, 12) > 0.5, jnp.float32)

    def values(key):
        labelled, unlabelled, log_qy = ssl.bounds(params, key, x[:2], jnp.eye(10)[:2], x, 3)
        return labelled.value, unlabelled.value, log_qy

    shapes = [v.shape for v in jax.eval_shape(values, jax.random.key(1))]
    assert shapes == [(2,), (4,), (2,)]


def test_choose_labelled_takes_n_per_class():
    labels = np.repeat(np.arange(10), 7)
    chosen = ssl.choose_labelled(jax.random.key(0), labels, 3)
    assert np.array_equal(np.bincount(labels[chosen]), np.full(10, 3))
    with pytest.raises(ValueError, match="class 0 has 7 digits, fewer than n_per_class=8"):
        ssl.choose_labelled(jax.random.key(0), labels, 8)


def test_command_learns_to_classify_from_50_labels(tmp_path):
    """A short run (50 steps, small nets) on 500 packaged digits with 5 labels per class lifts test
    accuracy well above chance (error 0.9). The classification weight is set to 10 (--alpha-scale 10,
    over the default ZhuSuan weighting's 1200) so that so few steps suffice; on a 2-core machine the
    run gave error 0.64 after 10 steps and 0.28 after 50 (the same with the paper's weighting), so the
    bound 0.75 has a wide margin. Writes metrics.json (with the test error after every epoch) and the
    class-conditional grid."""
    status = models.__main__.main(["ssl_vae", "--out", str(tmp_path), "--epochs", "5", "--n-train", "500",
                                   "--n-test", "200", "--n-labels", "50", "--batch-size", "50",
                                   "--learning-rate", "1e-3", "--alpha-scale", "10", "--z-dim", "8",
                                   "--n-hidden", "64", "--quiet"])
    assert status == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_error"] < 0.75
    # the per-epoch test error (history) is the same classifier on the same digits as the final one
    assert len(metrics["history"]["test_error"]) == 5
    assert metrics["history"]["test_error"][-1] == pytest.approx(metrics["test_error"], abs=1e-6)
    assert -400 < metrics["test_labelled_bound"] < 0 and -400 < metrics["test_unlabelled_bound"] < 0
    assert (tmp_path / "class_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="--n-labels must be a positive multiple of 10"):
        models.__main__.main(["ssl_vae", "--out", str(tmp_path / "bad"), "--n-labels", "15"])


def test_loss_weights_presets_overrides_and_errors():
    """ZhuSuan's weights, the paper's J^alpha / N (alpha = 0.1 N) and the overrides."""
    assert ssl.loss_weights("zhusuan", 100, 60000) == (1.0, 1.0, 1200.0)
    assert ssl.loss_weights("paper", 100, 60000) == pytest.approx((100 / 60000, 1.0, 0.1))
    assert ssl.loss_weights("paper", 100, 60000, labelled_weight=2.0, alpha_scale=5.0) == (2.0, 1.0, 5.0)
    with pytest.raises(ValueError, match="weighting must be one of"):
        ssl.loss_weights("kingma", 100, 60000)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="must be finite and >= 0"):
            ssl.loss_weights("zhusuan", 100, 60000, alpha_scale=bad)
    with pytest.raises(ValueError, match="at least one labelled and one unlabelled"):
        ssl.loss_weights("paper", 100, 0)


def test_time_budget_stops_after_the_deadline():
    """`--max-minutes`: the callback asks `fit` to stop once the budget is spent, never before."""
    assert ssl._time_budget(None) is None
    assert ssl._time_budget(60.0)(1, None, None, {}) is False
    spent = ssl._time_budget(1e-9)
    time.sleep(1e-3)
    assert spent(1, None, None, {}) is True
