"""The convolutional VAE (`python -m models vae --arch conv`): shapes and a tiny run of the command."""

import json
import math

import jax
import jax.numpy as jnp
import pytest

import models.__main__
from models.vae import conv


def test_networks_map_digits_to_codes_and_back():
    nets = conv.make_networks(jax.random.key(0), z_dim=6)

    def shapes(key):
        q = conv.build_q_net(nets, nets.params, jnp.zeros((5, 784)), 3).observe(key)
        gen = conv.build_gen(nets, nets.params, 5, 3).observe(key, z=q["z"].value)
        return q["z"].value, gen["x_mean"].value, gen.log_joint()

    assert [s.shape for s in jax.eval_shape(shapes, jax.random.key(1))] == [(3, 5, 6), (3, 5, 784), (3, 5)]
    with pytest.raises(ValueError, match="z_dim must be positive"):
        conv.make_networks(jax.random.key(0), z_dim=0)


def test_command_trains_and_evaluates(tmp_path):
    """8 SGVB steps on 256 packaged digits: the metrics are written and the test ELBO has left its
    value at initialisation (about -550 nats: 784 log 2 = 543 plus the KL of an untrained q; a 2-epoch
    run of 4 steps gave -427), so -520 is a wide margin; the IS log-likelihood is at least the ELBO
    up to Monte Carlo error (5 samples)."""
    status = models.__main__.main(["vae", "--arch", "conv", "--out", str(tmp_path), "--epochs", "2",
                                   "--n-train", "256", "--batch-size", "64", "--n-test", "25",
                                   "--n-importance", "5", "--quiet"])
    assert status == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["arch"] == "conv" and math.isfinite(metrics["test_log_likelihood"])
    assert -520 < metrics["test_elbo"] < 0 and metrics["test_log_likelihood"] > metrics["test_elbo"] - 5
    assert (tmp_path / "samples.png").is_file()
    with pytest.raises(ValueError, match="--arch conv has the Gaussian latent"):
        models.__main__.main(["vae", "--arch", "conv", "--latent", "bernoulli",
                              "--out", str(tmp_path / "bad")])
