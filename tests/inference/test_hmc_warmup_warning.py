"""A warmup too short for Stan's windowed mass adaptation is reported, not silently mis-tuned."""

import warnings

import jax
import jax.numpy as jnp
import pytest

import inference


def _log_joint(position):
    return -0.5 * jnp.sum(position["x"] ** 2)


def test_short_windowed_warmup_warns():
    hmc = inference.HMC(step_size=0.5, n_leapfrogs=3, adapt_step_size=True, adapt_mass=True)
    with pytest.warns(UserWarning, match="n_warmup=40 is shorter than the 150") as record:
        hmc.run(jax.random.key(0), _log_joint, {"x": jnp.zeros(2)}, n_samples=5, n_warmup=40)
    assert record[0].filename == __file__, "the warning should point at the user's call"


def test_long_enough_or_step_size_only_warmup_does_not_warn():
    init = {"x": jnp.zeros(2)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inference.HMC(step_size=0.5, n_leapfrogs=3, adapt_step_size=True, adapt_mass=True).run(
            jax.random.key(0), _log_joint, init, n_samples=5, n_warmup=150)
        inference.HMC(step_size=0.5, n_leapfrogs=3, adapt_step_size=True).run(
            jax.random.key(0), _log_joint, init, n_samples=5, n_warmup=40)
