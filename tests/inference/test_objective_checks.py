"""Every objective checks its `axis` against the latents' particle axis and the latent samples against
the model's node shapes, and says which node and which axis: a wrong axis or proposal shape is an
error, never a number. The checks are static, so the bodies run under `jax.eval_shape`.

Model: z ~ N(0, I) of shape [3, 2] (3 data points), x | z ~ N(z, 0.5^2), observed; q(z) draws K
particles with `n_samples=K`, so the log-weights have shape [K, 3] and the particle axis is 0.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
import ppl

X = np.array([[0.8, -1.5], [2.0, 0.3], [0.1, 0.2]], np.float32)     # [n=3, d=2]
K = 4


@ppl.meta_bayesian_net
def build_model(n_particles=None):
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros(X.shape), std=1., group_ndims=1, n_samples=n_particles)
    bn.normal("x", z, std=0.5, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q(n_particles=None, is_reparameterized=False):
    bn = ppl.BayesianNet()
    bn.normal("z", jnp.zeros(X.shape), std=1., group_ndims=1, n_samples=n_particles,
              is_reparameterized=is_reparameterized)
    return bn


OBJECTIVES = {
    "elbo": lambda *args, **kwargs: inference.elbo(*args, **kwargs).value,
    "importance_weighted_objective": lambda *args, **kwargs: inference.iw_objective(*args, **kwargs).value,
    "klpq": lambda *args, **kwargs: inference.klpq(*args, **kwargs).importance(),
    "is_loglikelihood": inference.is_loglikelihood,
}
ALL = pytest.mark.parametrize("objective", list(OBJECTIVES))
ONE_SAMPLE = pytest.mark.parametrize("objective", ["elbo", "klpq", "is_loglikelihood"])


def _run(objective, model=None, n_particles=K, latent=None, **kwargs):
    def body():
        given = ({"latent": latent} if latent is not None
                 else {"variational": build_q(n_particles).observe(jax.random.key(1))})
        return OBJECTIVES[objective](model or build_model(), {"x": X}, **given, **kwargs)
    return jax.eval_shape(body)


@ALL
def test_valid_calls(objective):
    assert _run(objective, axis=0).shape == (3,)


@ALL
def test_axis_over_the_data_is_an_error(objective):
    with pytest.raises(ValueError, match=r"axis=1 is not the particle axis: latent 'z' has 4 particles along "
                                         r"axis 0 of log_joint - log_q \(shape \(4, 3\)\): the variational "
                                         r"net drew it with n_samples=4; axis=1 would average over data"):
        _run(objective, axis=1)


@ALL
def test_axis_without_a_particle_axis_is_an_error(objective):
    with pytest.raises(ValueError, match=r"axis=0, but no latent has a particle axis .* axis 0 of log_joint "
                                         r"- log_q \(shape \(3,\)\) indexes data"):
        _run(objective, n_particles=None, axis=0)


@ONE_SAMPLE
def test_axis_none_with_particles_is_an_error(objective):
    with pytest.raises(ValueError, match=r"axis=None, but latent 'z' has 4 particles along axis 0 of "
                                         r"log_joint - log_q \(shape \(4, 3\)\).*give axis=0"):
        _run(objective)


def test_multi_sample_objective_needs_the_axis():
    with pytest.raises(ValueError, match=r"multi-sample objective: give `axis`, the axis of the K samples "
                                         r"\(latent 'z' has 4 particles along axis 0"):
        _run("importance_weighted_objective")


@ALL
def test_a_proposal_without_its_particle_axis_is_an_error(objective):
    """The model draws K particles of z itself; a proposal without that axis would be broadcast."""
    with pytest.raises(ValueError, match=r"latent 'z' has samples of shape \(3, 2\), fewer axes than the "
                                         r"model's node 'z' of shape \(4, 3, 2\)"):
        _run(objective, model=build_model(K), n_particles=None, axis=0)


def test_is_loglikelihood_with_a_latent_dict_without_particles():
    """A proposal given as samples without a particle axis: log-mean-exp would run over the data."""
    latent = {"z": (np.zeros(X.shape, np.float32), np.zeros(3, np.float32))}
    with pytest.raises(ValueError, match=r"axis=0, but no latent has a particle axis"):
        _run("is_loglikelihood", latent=latent, axis=0)


@ALL
@pytest.mark.parametrize("model_particles, node_shape", [(None, (3, 2)), (5, (5, 3, 2))])
def test_a_sample_that_would_be_broadcast_is_an_error(objective, model_particles, node_shape):
    latent = {"z": (np.zeros([5, 3, 1], np.float32), np.zeros([5, 3], np.float32))}
    message = (f"latent 'z' has samples of shape (5, 3, 1), but the model's node 'z' has shape {node_shape}: "
               "axis 2 of size 1 would be broadcast to 2")
    with pytest.raises(ValueError, match=re.escape(message)):
        _run(objective, model=build_model(model_particles), latent=latent, axis=0)


@ALL
def test_log_q_without_the_particle_axis_is_an_error(objective):
    latent = {"z": (np.zeros([K, 3, 2], np.float32), np.zeros(3, np.float32))}
    message = "latent 'z' has 4 particles along axis 0 of log_joint - log_q (shape (4, 3)), but its log_q of "
    with pytest.raises(ValueError, match=re.escape(message + "shape (3,) lacks that axis")):
        _run(objective, latent=latent, axis=0)


@ALL
def test_particle_axis_found_with_a_log_joint_function(objective):
    """With ZhuSuan's log-joint function instead of a model, the variational net still tells where
    the particles are."""
    def log_joint(values):
        return build_model().observe(**values).log_joint()

    assert _run(objective, model=log_joint, axis=0).shape == (3,)
    with pytest.raises(ValueError, match=r"axis=1 is not the particle axis: latent 'z' has 4 particles"):
        _run(objective, model=log_joint, axis=1)


def test_manually_broadcast_particles_are_found():
    """q's parameters broadcast to [K, n, d] without n_samples: the samples have one more leading
    axis than the model's node, which is the particle axis."""
    @ppl.meta_bayesian_net
    def broadcast_q():
        bn = ppl.BayesianNet()
        bn.normal("z", jnp.zeros((K, *X.shape)), std=1., group_ndims=1)
        return bn

    def body(axis):
        q = broadcast_q().observe(jax.random.key(2))
        return inference.elbo(build_model(), {"x": X}, variational=q, axis=axis).value

    assert jax.eval_shape(lambda: body(0)).shape == (3,)
    with pytest.raises(ValueError, match=r"axis=None, but latent 'z' has 4 particles along axis 0 .* its "
                                         r"samples \(4, 3, 2\) have 1 more leading axes than the model"):
        jax.eval_shape(lambda: body(None))
