"""Enumeration of finite discrete latents: value and gradients against brute-force enumeration.

Exactness checks compare the vectorised objectives with a Python loop over the support that
observes each value with the same key (so the same noise), or with closed forms: equal up to
float32 rounding (rtol 1e-5, atol 1e-5; the sums have a handful of terms of size ~10). Each check
compiles the objective and its reference into one program (`_same_value_and_grad`). The statistical
checks are z-tests with |z| < 5 per component against the exact gradient (false-failure rate
5.7e-7 per component, below 1e-4 for the file).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import inference
import ppl
from inference import estimators
from tests.inference.enumeration_models import (
    PARAMS,
    K,
    N,
    P,
    X,
    build_model,
    build_q,
    exact_discrete,
    exact_elbo,
    full,
    loop_marginal,
    loop_variational,
)

TOL = dict(rtol=1e-5, atol=1e-5)
Z_MAX = 5.0


def _same_value_and_grad(fn, reference, params):
    """Asserts `fn(params)` and `reference(params)` (arrays per data point) and the gradients of their
    sums agree; returns fn's gradient."""
    value_and_grad = lambda f, p: (f(p), jax.grad(lambda p: jnp.sum(f(p)))(p))
    (value, grads), (expected, expected_grads) = jax.jit(
        lambda p: (value_and_grad(fn, p), value_and_grad(reference, p)))(params)
    np.testing.assert_allclose(value, expected, **TOL)
    for name in grads:
        np.testing.assert_allclose(grads[name], expected_grads[name], err_msg=name, **TOL)
    return grads


def _assert_z(samples, exact, what=""):
    samples = np.asarray(samples, np.float64)
    stderr = samples.std(0, ddof=1) / np.sqrt(len(samples))
    z = (samples.mean(0) - np.asarray(exact)) / np.where(stderr > 0, stderr, np.inf)
    assert np.all(np.abs(z) < Z_MAX), (what, z)


def test_variational_latent_alone_is_the_exact_elbo(key):
    """q(y | x) only (no z): the enumerated ELBO is sum_y q(y)[log p(x, y) - log q(y)] exactly, value
    and gradients, including q(y)'s."""
    def bound(params):
        q = build_q(params, with_z=False).observe(key)
        model = build_model(params, with_z=False)
        return inference.elbo(model, {"x": X}, variational=q, enumerate=["y"]).value

    grads = _same_value_and_grad(bound, lambda p: exact_discrete(p)[0], PARAMS)
    assert float(jnp.max(jnp.abs(grads["phi"]))) > 1e-2


def test_model_latent_alone_is_the_exact_marginal_likelihood():
    """A mixture with y enumerated in the model and nothing left to sample (`latent={}`): the ELBO,
    the importance weighted bound and is_loglikelihood are log p(x) exactly, with its gradients."""
    def bounds(p):
        model = build_model(p, with_z=False)
        return jnp.stack([inference.elbo(model, {"x": X}, latent={}, enumerate="y").value,
                          inference.is_loglikelihood(model, {"x": X}, latent={}, enumerate="y")])

    _same_value_and_grad(bounds, lambda p: jnp.stack([exact_discrete(p)[1]] * 2), PARAMS)


def _enumerated_elbo(params, key, n_particles=P):
    q = build_q(params, n_particles).observe(key)
    return inference.elbo(build_model(params, n_particles), {"x": X}, variational=q, axis=0, enumerate=["y"])


def test_variational_latent_with_sgvb_matches_the_loop(key):
    """y enumerated in q, z ~ q(z | x, y) drawn for each y: log_joint, log_q, the value and the SGVB
    gradient equal the loop over y (same noise); the shapes are as documented."""
    lb = jax.eval_shape(lambda p: _enumerated_elbo(p, key).log_joint, PARAMS)
    assert lb.shape == (K, P, N)

    def check_and_cost(p):
        lb = _enumerated_elbo(p, key)
        assert lb.log_weight.shape == (K, P, N) and lb.enumerated_log_q.shape == (K, 1, N)
        assert lb.value.shape == (N,) and lb.n_particles == P and lb.axis == 0
        node = lb.enumerated["y"]
        assert list(lb.enumerated) == ["y"] and node.is_variational and node.axis == 0
        assert node.values.shape == (K,)
        log_joint, log_q_z, log_q_y = loop_variational(p, key)
        # log_joint and log_q equal the loop's, folded into the cost so one program checks them
        mismatch = jnp.max(jnp.abs(lb.log_joint - log_joint)) + jnp.max(jnp.abs(lb.log_q - log_q_z - log_q_y))
        return lb.sgvb() + jax.lax.stop_gradient(mismatch)

    def loop_cost(p):
        log_joint, log_q_z, log_q_y = loop_variational(p, key)
        return -jnp.mean(jnp.sum(jnp.exp(log_q_y) * (log_joint - log_q_z - log_q_y), 0), 0)

    _same_value_and_grad(check_and_cost, loop_cost, PARAMS)


def test_variational_latent_with_sgvb_is_unbiased_for_the_closed_form():
    """Over 2000 keys (one particle each), the mean value and SGVB gradient match the closed-form
    ELBO of the Gaussian model and its exact gradient (|z| < 5 per component)."""
    def one(key):
        return jax.value_and_grad(lambda p: jnp.sum(_enumerated_elbo(p, key, 1).value))(PARAMS)

    values, grads = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), 2000))
    exact_value, exact_grads = jax.value_and_grad(lambda p: jnp.sum(exact_elbo(p)))(PARAMS)
    _assert_z(values, exact_value, "value")
    for name in exact_grads:
        _assert_z(grads[name], exact_grads[name], name)


def test_model_latent_with_sgvb_matches_the_loop(key):
    """y only in the model: log_joint is log sum_y p(x, y, z) (no enumeration axis, `[P, N]`), and the
    value and SGVB gradient equal the loop's; `bn` is the model at y's first value."""
    def cost(p):
        q = build_q(p, P, with_y=False).observe(key)
        lb = inference.elbo(build_model(p, P), {"x": X}, variational=q, axis=0, enumerate="y")
        assert lb.log_joint.shape == (P, N) and lb.enumerated_log_q.shape == ()
        assert not lb.enumerated["y"].is_variational and lb.enumerated["y"].axis is None
        assert lb.bn["y"].value.shape == (P, N)
        return lb.sgvb() + jax.lax.stop_gradient(jnp.max(jnp.abs(lb.bn["y"].value)))    # the first value: 0

    _same_value_and_grad(cost, lambda p: -jnp.mean(jnp.subtract(*loop_marginal(p, key)), 0), PARAMS)


def test_importance_weighted_and_is_loglikelihood_match_the_loop(key):
    """The importance weighted bound sums y out of each particle's weight, log mean_p sum_y
    p(x, y, z_py) / q(z_py | y) (q(y) cancels), for y in q and for y in the model only;
    is_loglikelihood is the same number; sgvb's value and gradient are the loop's."""
    def bounds(p):
        out = []
        for with_y in (True, False):
            q = build_q(p, P, with_y=with_y).observe(key)
            model = build_model(p, P)
            iw = inference.iw_objective(model, {"x": X}, variational=q, axis=0, enumerate=["y"])
            out.append(-iw.sgvb())
            out.append(inference.is_loglikelihood(model, {"x": X}, variational=q, axis=0, enumerate=["y"]))
        return jnp.stack(out)

    def loop_bounds(p):
        log_joint, log_q_z, _ = loop_variational(p, key)
        variational = jax.nn.logsumexp(jax.nn.logsumexp(log_joint - log_q_z, 0), 0) - jnp.log(P)
        model = jax.nn.logsumexp(jnp.subtract(*loop_marginal(p, key)), 0) - jnp.log(P)
        return jnp.stack([variational, variational, model, model])

    _same_value_and_grad(bounds, loop_bounds, PARAMS)


def test_klpq_weighs_every_value_and_particle(key):
    """RWS's q update with y enumerated: every (value, particle) pair is a sample with weight
    p(x, y, z) / q(z | y), self-normalised over both; the cost is -sum w~ log q(y, z)."""
    def cost(p):
        q = build_q(p, P, is_reparameterized=False).observe(key)
        return inference.klpq(build_model(p, P), {"x": X}, variational=q, axis=0, enumerate="y").importance()

    def loop_cost(p):
        log_joint, log_q_z, log_q_y = loop_variational(p, key, is_reparameterized=False)   # [K, P, N]
        weights = jax.nn.softmax(jax.lax.stop_gradient(log_joint - log_q_z).reshape(K * P, N), 0)
        return -jnp.sum(weights * (log_q_z + log_q_y).reshape(K * P, N), 0)

    _same_value_and_grad(cost, loop_cost, PARAMS)


# ------------------------------------------------------------------ composition with score functions
@ppl.meta_bayesian_net
def _model_w(params, n_particles=None):
    """w ~ Bernoulli(theta) [N], y ~ Cat(prior) [N], x ~ N(a w + m_y, 0.7^2) (D dims)."""
    bn = ppl.BayesianNet()
    w = bn.bernoulli("w", logits=params["theta"], n_samples=n_particles)
    y = bn.categorical("y", logits=jnp.broadcast_to(params["prior"], (N, K)), n_samples=n_particles)
    bn.normal("x", params["a"] * w[..., None] + params["m"][y], std=0.7, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def _q_w(params, n_particles=None, with_y=True):
    """w ~ Bernoulli(phi_w) `[P, N]`, then y ~ Cat(phi + psi w) given w (drawn after w)."""
    bn = ppl.BayesianNet()
    w = bn.bernoulli("w", logits=params["phi_w"], n_samples=n_particles)
    if with_y:
        bn.categorical("y", logits=params["phi"] + w[..., None] * params["psi"])
    return bn


@ppl.meta_bayesian_net
def _q_y(params):
    bn = ppl.BayesianNet()
    bn.categorical("y", logits=params["phi"])
    return bn


@ppl.meta_bayesian_net
def _q_stl(params):
    bn = ppl.BayesianNet()
    bn.normal("z", params["mu"][0], logstd=params["log_s"][0], group_ndims=1, n_samples=P,
              use_path_derivative=True)
    return bn


W_PARAMS = {**PARAMS, "theta": jnp.array([0.4, -0.6]), "a": jnp.array([1.5, -0.5]),
            "phi_w": jnp.array([-0.3, 0.5]), "psi": jnp.array([0.8, -0.4, 0.1])}


def _exact_w_elbo(params):
    """sum_w sum_y q(w) q(y | w) [log p(x, w, y) - log q(w) - log q(y | w)], summed over data."""
    total = 0.0
    for w in (0, 1):
        log_q_w = _q_w(params).observe(w=full(w, (N,)), y=jnp.zeros(N, jnp.int32))["w"].log_prob
        log_q_y = jax.nn.log_softmax(params["phi"] + w * params["psi"], -1).T               # [K, N]
        for k in range(K):
            log_joint = _model_w(params).observe(x=X, w=full(w, (N,)), y=full(k, (N,))).log_joint()
            total += jnp.exp(log_q_w + log_q_y[k]) * (log_joint - log_q_w - log_q_y[k])
    return jnp.sum(total)


def test_reinforce_with_an_enumerated_latent_is_unbiased():
    """w sampled (REINFORCE), y ~ q(y | w) enumerated: over 4000 keys the mean cost gradient matches
    the exact gradient of the ELBO (w and y summed by hand), with a centring state and a baseline."""
    state = estimators.ReinforceState(jnp.float32(-4.0), jnp.int32(7))

    def one(key):
        def cost(p):
            lb = inference.elbo(_model_w(p, 1), {"x": X}, variational=_q_w(p, 1).observe(key), axis=0,
                                enumerate=["y"])
            return jnp.sum(lb.reinforce(state, baseline=jnp.array([0.5, -1.0])).cost)
        return jax.grad(cost)(W_PARAMS)

    grads = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(2), 4000))
    exact = jax.grad(_exact_w_elbo)(W_PARAMS)
    for name in exact:
        _assert_z(grads[name], -exact[name], name)


def test_reinforce_state_takes_the_q_weighted_signal(key):
    """The moving average takes the q(y)-weighted mean signal, i.e. the mean ELBO over the batch."""
    def run(p):
        q = _q_w(p, P).observe(key)
        lb = inference.elbo(_model_w(p, P), {"x": X}, variational=q, axis=0, enumerate="y")
        result = lb.reinforce(inference.reinforce_init(), decay=0.5)
        assert result.cost.shape == result.baseline_cost.shape == (N,)
        return result.state, lb.value

    state, value = jax.jit(run)(W_PARAMS)
    np.testing.assert_allclose(state.moving_mean, 0.5 * jnp.mean(value), **TOL)
    assert int(state.n_updates) == 1


def test_vimco_and_dreg_with_a_model_latent_match_the_marginal_arrays(key):
    """y enumerated in the model: VIMCO on w, and DReG on z (the model re-conditioned on stopped
    samples), equal the estimators applied to the brute-force marginal log-joint arrays."""
    def costs(p):
        q_w, q_z = _q_w(p, P, with_y=False).observe(key), _q_stl(p).observe(key)
        iw = lambda model, q: inference.iw_objective(model, {"x": X}, variational=q, axis=0, enumerate="y")
        vimco, dreg = iw(_model_w(p, P), q_w).vimco(), iw(build_model(p, P), q_z).dreg()
        return jnp.stack([vimco, dreg])

    def loop_costs(p):
        q_w, q_z = _q_w(p, P, with_y=False).observe(key), _q_stl(p).observe(key)
        marginal = lambda model, **values: jax.nn.logsumexp(jnp.stack([
            model.observe(x=X, y=full(k), **values).log_joint() for k in range(K)]), 0)
        z = q_z["z"].value
        vimco = estimators.vimco(marginal(_model_w(p, P), w=q_w["w"].value), q_w["w"].log_prob, 0)
        dreg = estimators.dreg(marginal(build_model(p, P), z=z), q_z["z"].log_prob, 0,
                               marginal(build_model(p, P), z=jax.lax.stop_gradient(z)))
        return jnp.stack([vimco, dreg])

    _same_value_and_grad(costs, loop_costs, W_PARAMS)


def test_a_variational_and_a_model_latent_together(key):
    """y enumerated in q and w in the model (nothing is sampled): log_joint is `[K, N]` with w summed
    out of p for each y; value and gradients equal the nested loop."""
    def bound(p):
        lb = inference.elbo(_model_w(p), {"x": X}, variational=_q_y(p).observe(key), enumerate=["w", "y"])
        assert lb.log_joint.shape == (K, N) and list(lb.enumerated) == ["y", "w"]
        assert lb.enumerated["y"].axis == 0 and lb.enumerated["w"].axis is None
        assert lb.enumerated["w"].values.shape == (2,)
        return lb.value

    def loop_bound(p):
        log_q_y = jax.nn.log_softmax(p["phi"], -1).T                                       # [K, N]
        log_joint = jnp.stack([jax.nn.logsumexp(jnp.stack([
            _model_w(p).observe(x=X, w=full(w, (N,)), y=full(k, (N,))).log_joint() for w in (0, 1)]), 0)
            for k in range(K)])                                                             # [K, N]
        return jnp.sum(jnp.exp(log_q_y) * (log_joint - log_q_y), 0)

    _same_value_and_grad(bound, loop_bound, W_PARAMS)
