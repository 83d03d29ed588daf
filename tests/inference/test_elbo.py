"""`inference.elbo`: value and SGVB gradients against the closed form of a conjugate Gaussian model,
the `latent=` form, STL, and the errors of the shared `VariationalObjective`.

Model, per data point n and dimension d: z ~ N(0, 1), x | z ~ N(z, SIGMA^2); q(z) = N(mu, s^2). Then
  ELBO = sum_d [ -log(2 pi)/2 - log SIGMA - (mu^2 + s^2)/2 - ((x - mu)^2 + s^2) / (2 SIGMA^2)
                 + log s + 1/2 ]
  d ELBO / d mu    = -mu + (x - mu) / SIGMA^2
  d ELBO / d log s = 1 - s^2 (1 + 1 / SIGMA^2)
and the exact posterior is N(x / (1 + SIGMA^2), SIGMA^2 / (1 + SIGMA^2)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import inference
import ppl
from tests.inference.gaussian_model import SIGMA, X, build_model

MU = np.array([[0.2, -0.4], [1.0, 0.9]], np.float32)
LOG_S = np.log(np.array([[0.6, 0.3], [0.5, 0.9]], np.float32))


@ppl.meta_bayesian_net
def build_q(mu, log_s, n_particles=None, is_reparameterized=None, use_path_derivative=False):
    bn = ppl.BayesianNet()
    bn.normal("z", mu, logstd=log_s, group_ndims=1, n_samples=n_particles,
              is_reparameterized=is_reparameterized, use_path_derivative=use_path_derivative)
    return bn


def exact_elbo(mu, log_s, xp=np):
    s2 = xp.exp(2 * log_s)
    terms = (-0.5 * np.log(2 * np.pi) - np.log(SIGMA) - 0.5 * (mu**2 + s2)
             - 0.5 * ((X - mu) ** 2 + s2) / SIGMA**2 + log_s + 0.5)
    return xp.sum(terms, -1)


def exact_grads(mu, log_s):
    s2 = np.exp(2 * log_s)
    return {"mu": -mu + (X - mu) / SIGMA**2, "log_s": 1 - s2 * (1 + 1 / SIGMA**2)}


def posterior():
    return X / (1 + SIGMA**2), np.full(X.shape, 0.5 * np.log(SIGMA**2 / (1 + SIGMA**2)), np.float32)


def test_closed_form_helpers_agree():
    """exact_grads is the gradient of exact_elbo (checked by autodiff), so the references agree."""
    total = lambda p: jnp.sum(exact_elbo(p["mu"], p["log_s"], jnp))
    grads = jax.jit(jax.grad(total))({"mu": MU, "log_s": LOG_S})
    for name, value in exact_grads(MU, LOG_S).items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-5)


def _per_particle(key, n_particles, use_path_derivative=False, mu=MU, log_s=LOG_S, with_axis_0=True):
    """Per-particle ELBO terms [K, n] and per-particle SGVB gradients [K, n, d], with the axis=0
    objective's value [n] and gradient [n, d], in one jit.

    Per-particle gradients in one backward pass: q's parameters are broadcast to [K, n, d] (every
    particle gets its own copy), so d(sum of the per-particle values)/d(copy k) is particle k's
    gradient; the SGVB cost with axis=0 is minus the particle mean, hence the factor -K. The axis=0
    objective of the unbroadcast parameters is the same function, so its gradient is exactly the
    particle mean of those, by the chain rule.
    """
    shape = (n_particles, *X.shape)

    def objective(params, axis):
        q = build_q(jnp.broadcast_to(params["mu"], shape), jnp.broadcast_to(params["log_s"], shape),
                    use_path_derivative=use_path_derivative).observe(key)
        return inference.elbo(build_model(), {"x": X}, variational=q, axis=axis)

    @jax.jit
    def body(params):
        copies = jax.tree_util.tree_map(lambda p: jnp.broadcast_to(p, shape), params)
        per_particle = objective(copies, 0).log_weight                                           # [K, n]
        jacobian = jax.grad(lambda p: -n_particles * jnp.sum(objective(p, 0).sgvb()))(copies)   # [K, n, d]
        if not with_axis_0:
            return per_particle, jacobian, None, None
        value = objective(params, 0).value                                           # [n]
        grad = jax.grad(lambda p: -jnp.sum(objective(p, 0).sgvb()))(params)          # [n, d]
        return per_particle, jacobian, value, grad

    return body({"mu": mu, "log_s": log_s})


def test_elbo_value_and_sgvb_gradient_match_closed_form(key):
    """K = 2000 particles; each of the 2 values and 8 gradient components must be within 4 Monte
    Carlo standard errors (std of the per-particle values / sqrt(K)) of the closed form. By the CLT
    each check fails by chance with probability 6e-5, so the test's false-failure rate is < 1e-3."""
    n_particles = 2000
    per_particle, jacobian, value, grad = _per_particle(key, n_particles)
    assert per_particle.shape == (n_particles, 2) and value.shape == (2,)
    # the objective with axis=0 is exactly the particle mean (value and gradient)
    np.testing.assert_allclose(value, np.mean(per_particle, 0), rtol=1e-5)
    for name in ("mu", "log_s"):
        np.testing.assert_allclose(grad[name], np.mean(jacobian[name], 0), rtol=1e-4, atol=1e-5)
        assert jacobian[name].shape == (n_particles, *X.shape)

    def assert_within_4_se(samples, exact):
        se = np.std(samples, 0) / np.sqrt(n_particles)
        np.testing.assert_array_less(np.abs(np.mean(samples, 0) - exact), 4 * se)

    assert_within_4_se(per_particle, exact_elbo(MU, LOG_S))
    for name, exact in exact_grads(MU, LOG_S).items():
        assert_within_4_se(jacobian[name], exact)


def test_stl_gradient_is_zero_when_q_is_the_posterior(key):
    """With q = p(z | x), log p(x, z) - log q(z) = log p(x) for every z, so the path-derivative (STL)
    gradient is zero sample by sample (float32 rounding: atol 1e-4), and the value is log p(x) exactly.
    Without the path derivative the per-sample gradient wrt mu would be the score term -eps / s, far
    from zero, so the check can fail."""
    mean, log_std = posterior()
    per_particle, jacobian, _, _ = _per_particle(key, 50, use_path_derivative=True, mu=mean, log_s=log_std,
                                                 with_axis_0=False)
    for name in ("mu", "log_s"):
        np.testing.assert_allclose(jacobian[name], 0., atol=1e-4)
    log_evidence = np.sum(-0.5 * np.log(2 * np.pi * (1 + SIGMA**2)) - 0.5 * X**2 / (1 + SIGMA**2), -1)
    np.testing.assert_allclose(per_particle, np.broadcast_to(log_evidence, (50, 2)), rtol=1e-5, atol=1e-5)


def test_single_sample_axis_none_and_latent_dict(key):
    """axis=None: no particle axis, the value is log p(x, z) - log q(z) for the one sample; giving
    latent={name: (samples, log_q)} is the same as giving the variational net; the model's log_joint
    override is used; with n_samples particles and axis=0 the value is the mean of the per-particle
    log-weights."""

    @jax.jit
    def body(key):
        q = build_q(MU, LOG_S).observe(key)
        z = q["z"].value
        from_net = inference.elbo(build_model(), {"x": X}, variational=q)
        from_dict = inference.elbo(build_model(), {"x": X}, latent={"z": (z, q["z"].log_prob)})
        assert from_net.value.shape == (2,)
        assert from_net.bn["z"].is_observed and from_net.bn["z"].value is z
        by_hand = (build_model().observe(z=z, x=X).log_joint() - q["z"].log_prob)
        # the objective uses the model's log_joint override (here: the likelihood counted 10 times)
        scaled_model = build_model()
        scaled_model.log_joint = lambda bn: bn.cond_log_prob("z") + 10. * bn.cond_log_prob("x")
        scaled = inference.elbo(scaled_model, {"x": X}, variational=q).value
        scaled_by_hand = by_hand + 9. * from_net.bn["x"].log_prob
        # with n_samples particles, axis=0 averages the per-particle values of axis=None
        q5 = build_q(MU, LOG_S, 5).observe(key)
        averaged = inference.elbo(build_model(), {"x": X}, variational=q5, axis=0)
        per_particle = averaged.log_weight
        assert averaged.value.shape == (2,) and per_particle.shape == (5, 2)
        averages = averaged.value, jnp.mean(per_particle, 0), averaged.sgvb()
        return (from_net.value, from_dict.value, by_hand, from_net.sgvb(), from_net.log_q, scaled,
                scaled_by_hand, averages)

    from_net, from_dict, by_hand, cost, log_q, scaled, scaled_by_hand, averages = body(key)
    np.testing.assert_allclose(averages[0], averages[1], rtol=1e-6)
    np.testing.assert_allclose(averages[2], -averages[0], rtol=1e-6)
    np.testing.assert_allclose(from_net, by_hand, rtol=1e-6)
    np.testing.assert_allclose(scaled, scaled_by_hand, rtol=1e-5)
    np.testing.assert_array_equal(from_net, from_dict)
    np.testing.assert_array_equal(cost, -from_net)
    assert log_q.shape == (2,)


def test_sgvb_raises_for_non_reparameterised_latent(key):
    def run():
        q = build_q(MU, LOG_S, 3, is_reparameterized=False).observe(key)
        lb = inference.elbo(build_model(), {"x": X}, variational=q, axis=0)
        assert lb.value.shape == (2,)          # the value is fine; only the estimator needs a path
        lb.sgvb()

    with pytest.raises(ValueError, match=r"sgvb needs reparameterised latents, but latent 'z' \(Normal\)"):
        jax.eval_shape(run)


# ---------------------------------------------------------------- errors of VariationalObjective
# The checks are static, so these run under jax.eval_shape: traced, never compiled.

def _elbo_with_q(observed=None, latent_from_q=False, **kwargs):
    """Traces `inference.elbo` with a 3-particle q sampled inside the trace."""
    def run():
        q = build_q(MU, LOG_S, 3).observe(jax.random.key(1))
        given = {"latent": {"z": (q["z"].value, q["z"].log_prob)}} if latent_from_q else {"variational": q}
        return inference.elbo(kwargs.pop("model", build_model()), {"x": X} if observed is None else observed,
                              **given, **kwargs).value
    return jax.eval_shape(run)


def test_both_or_neither_of_variational_and_latent():
    with pytest.raises(ValueError, match=r"exactly one of `variational`.*or `latent`.*got both"):
        jax.eval_shape(lambda: inference.elbo(build_model(), {"x": X}, variational=build_q(MU, LOG_S).observe(
            jax.random.key(1)), latent={"z": (MU, np.zeros(2))}))
    with pytest.raises(ValueError, match=r"exactly one of `variational`.*or `latent`.*got neither"):
        inference.elbo(build_model(), {"x": X}, axis=0)


@pytest.mark.parametrize("latent, error, message", [
    ({"z": [np.zeros(2), np.zeros(())]}, TypeError,
     r"latent\['z'\] must be a pair \(samples, log_q\), got list"),
    ({"z": (np.zeros(2),)}, TypeError, r"latent\['z'\] must be a pair"),
    ({"z": np.zeros(2)}, TypeError, r"latent\['z'\] must be a pair.*ndarray"),
    ([("z", np.zeros(2))], TypeError, r"`latent` must be a dict"),
    ({}, ValueError, r"no latent variables: `latent` is empty"),
])
def test_latent_entries_must_be_pairs(latent, error, message):
    with pytest.raises(error, match=message):
        inference.elbo(build_model(), {"x": X}, latent=latent)


def test_variational_must_be_a_sampled_net():
    with pytest.raises(TypeError, match=r"`variational` must be a sampled ppl.BayesianNet.*MetaBayesianNet"):
        inference.elbo(build_model(), {"x": X}, variational=build_q(MU, LOG_S))
    with pytest.raises(ValueError, match=r"the variational net has no sampled node"):
        jax.eval_shape(lambda: inference.elbo(build_model(), {"x": X},
                                              variational=build_q(MU, LOG_S).observe(z=MU)))
    with pytest.raises(TypeError, match=r"`meta_bn` is the decorated builder 'build_model' itself; call it"):
        _elbo_with_q(model=build_model)
    with pytest.raises(TypeError, match=r"`meta_bn` must be a ppl.MetaBayesianNet or a log-joint function"):
        _elbo_with_q(model=3.0)


def test_valid_calls_trace(key):
    assert _elbo_with_q(axis=0).shape == (2,)
    assert _elbo_with_q(axis=-2, latent_from_q=True).shape == (2,)


def test_latent_also_observed():
    with pytest.raises(ValueError, match=r"\['z'\] are given both as observed and as latent"):
        _elbo_with_q({"x": X, "z": MU}, axis=0)


@pytest.mark.parametrize("axis", [2, -3])
def test_axis_out_of_range(axis):
    with pytest.raises(ValueError, match=rf"axis={axis} is out of range for log_joint - log_q of rank 2 "
                                         r"\(log_joint shape \(3, 2\), log_q shape \(3, 2\)\)"):
        _elbo_with_q(axis=axis)


def test_model_latent_neither_observed_nor_given():
    @ppl.meta_bayesian_net
    def two_latents():
        bn = ppl.BayesianNet()
        z = bn.normal("z", jnp.zeros(X.shape), std=1., group_ndims=1)
        w = bn.normal("w", 0., std=1.)
        bn.normal("x", z + w, std=SIGMA, group_ndims=1)
        return bn

    with pytest.raises(ValueError, match=r"model 'two_latents' on observed \['x'\] and latent \['z'\]: "
                                         r"node 'w' is not observed and must be sampled"):
        _elbo_with_q(model=two_latents(), axis=0)


def test_latent_with_wrong_shape_names_the_node():
    with pytest.raises(ValueError, match=r"node 'z': observation of shape \(3, 5\) does not broadcast with "
                                         r"the node's shape \(2, 2\)"):
        jax.eval_shape(lambda: inference.elbo(build_model(), {"x": X},
                                              latent={"z": (np.zeros([3, 5]), np.zeros(3))}, axis=0).value)
