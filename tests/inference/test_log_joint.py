"""`log_joint_fn` / `make_log_joint`: latent discovery, transforms and Jacobians, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import ppl
from inference.log_joint import latent_specs, log_joint_fn, make_log_joint


@ppl.meta_bayesian_net
def model():
    bn = ppl.BayesianNet()
    scale = bn.gamma("scale", 2.0, 3.0)
    p = bn.beta("p", 2.0, 5.0)
    pi = bn.dirichlet("pi", jnp.array([1.0, 2.0, 3.0]))
    w = bn.normal("w", jnp.zeros(2), std=1.0, group_ndims=1)
    bn.normal("y", jnp.broadcast_to(w[0] + p, (4,)), std=scale, group_ndims=1)
    bn.categorical("c", probs=pi)
    return bn


Y, C = jnp.array([0.1, -0.3, 0.5, 0.2]), jnp.array(2, jnp.int32)


def test_latent_specs_shapes_and_supports():
    specs = latent_specs(model(), {"y": Y, "c": C})
    assert list(specs) == ["scale", "p", "pi", "w"]
    assert specs["pi"].shape == (3,) and specs["pi"].unconstrained_shape == (2,)   # stick-breaking
    assert specs["w"].unconstrained_shape == (2,) and specs["scale"].shape == ()


def test_log_joint_adds_the_jacobians():
    # log p in the unconstrained space = sum of exact log densities (scipy) + log|dT/du| of each transform.
    fn = make_log_joint(model(), {"y": Y, "c": C})
    u = {"scale": jnp.array(0.3), "p": jnp.array(-0.4), "pi": jnp.array([0.2, -0.1]),
         "w": jnp.array([0.5, -1.0])}
    z = jax.jit(fn.to_constrained)(u)
    scale, p, pi, w = (np.asarray(z[k], np.float64) for k in ["scale", "p", "pi", "w"])
    np.testing.assert_allclose(pi.sum(), 1.0, rtol=1e-6)
    pi = pi / pi.sum()   # float32 round-off; scipy insists on an exact simplex
    exact = (stats.gamma(2.0, scale=1 / 3.0).logpdf(scale) + stats.beta(2.0, 5.0).logpdf(p)
             + stats.dirichlet([1.0, 2.0, 3.0]).logpdf(pi) + stats.norm().logpdf(w).sum()
             + stats.norm(w[0] + p, scale).logpdf(np.asarray(Y)).sum() + np.log(pi[2]))
    log_jacobian = float(u["scale"]) + np.log(p * (1 - p))   # exp and sigmoid
    # stick-breaking: the Jacobian onto the first K - 1 coordinates of the simplex
    stick = jax.jit(jax.jacfwd(lambda v: fn.to_constrained({**u, "pi": v})["pi"][:2]))(u["pi"])
    log_jacobian += float(jnp.linalg.slogdet(stick)[1])
    np.testing.assert_allclose(float(jax.jit(fn.log_joint_fn)(u)), exact + log_jacobian, rtol=1e-5, atol=1e-4)
    back = jax.jit(fn.to_unconstrained)(z)
    for name in u:
        np.testing.assert_allclose(back[name], u[name], atol=1e-5)
    grads = jax.jit(jax.grad(log_joint_fn(model(), {"y": Y, "c": C})))(u)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_scalar_prior_is_counted_once():
    # BayesianNet.log_joint broadcasts a scalar prior over the data axis; the HMC log-joint must not.
    @ppl.meta_bayesian_net
    def rate_model():
        bn = ppl.BayesianNet()
        lam = bn.gamma("lam", 2.0, 1.0)
        bn.poisson("n", jnp.broadcast_to(lam, (5,)))
        return bn

    counts = jnp.array([3.0, 5.0, 4.0, 2.0, 6.0])
    fn = log_joint_fn(rate_model(), {"n": counts})
    lam = 2.5
    exact = stats.gamma(2.0).logpdf(lam) + stats.poisson(lam).logpmf(np.asarray(counts)).sum() + np.log(lam)
    np.testing.assert_allclose(float(fn({"lam": jnp.log(lam)})), exact, rtol=1e-5)


def test_errors_name_the_node():
    with pytest.raises(TypeError, match="'c' .* discrete"):
        latent_specs(model(), {"y": Y})
    with pytest.raises(ValueError, match="bogus"):
        latent_specs(model(), {"y": Y, "c": C}, init={"bogus": 1.0})
    with pytest.raises(ValueError, match="observed"):
        latent_specs(model(), {"y": Y, "c": C}, init={"y": Y})
    fn = log_joint_fn(model(), {"y": Y, "c": C})
    with pytest.raises(KeyError, match="lacks latents"):
        fn({"w": jnp.zeros(2)})
