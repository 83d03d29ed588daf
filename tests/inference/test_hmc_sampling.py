"""Statistical tests of `HMC`, `NUTS` and `ChEES`: MCSE z-tests against known posteriors, adaptation,
constrained latents.

Each test compares Monte Carlo estimates E_hat[f] with their exact values through
z = (E_hat[f] - E[f]) / MCSE, MCSE = sd(f) / sqrt(ESS(f)) with the multi-chain ESS of
`inference.diagnostics`. With |z| < 4.5 per comparison the two-sided false-failure rate is
6.8e-6 for a normal z; over the k comparisons of a test (Bonferroni) it is below k * 6.8e-6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import ppl
from inference.diagnostics import effective_sample_size
from inference.hmc import HMC, NUTS, ChEES

Z_MAX = 4.5


def z_score(values, exact):
    """z of the mean of `values` [n_chains, n_samples] against `exact`, using the MCSE."""
    values = np.asarray(values, np.float64)
    mcse = values.std() / np.sqrt(effective_sample_size(values))
    return (values.mean() - exact) / mcse


# ------------------------------------------------------------------ correlated 2-D Gaussian, no DSL
MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 1.8], [1.8, 4.0]])   # sds 1 and 2, correlation 0.9
PRECISION = jnp.asarray(np.linalg.inv(COV), jnp.float32)


def correlated_log_joint(position):
    d = position - jnp.asarray(MEAN, jnp.float32)
    return -0.5 * d @ PRECISION @ d


def make_sampler(name, dense_mass=False):
    """The samplers under test, as a user would configure them."""
    if name == "hmc":
        return HMC(step_size=0.1, n_leapfrogs=10, adapt_step_size=True, adapt_mass=True,
                   dense_mass=dense_mass)
    if name == "nuts":
        return NUTS(dense_mass=dense_mass)
    return ChEES()


N_CHAINS = {"hmc": 8, "nuts": 8, "chees": 32}   # ChEES adapts across chains: it wants many


@pytest.mark.slow
@pytest.mark.parametrize("name, dense_mass", [("hmc", False), ("hmc", True), ("nuts", False), ("nuts", True),
                                              ("chees", False)])
def test_correlated_gaussian_moments(name, dense_mass):
    # 5 comparisons per case (2 means, 2 variances, 1 covariance): false-failure rate < 3.4e-5.
    sampler = make_sampler(name, dense_mass)
    n_chains = N_CHAINS[name]
    init = jnp.zeros((n_chains, 2))
    samples, info = sampler.run(jax.random.key(0), correlated_log_joint, init, n_samples=500, n_warmup=300)
    x = np.asarray(samples, np.float64)
    assert x.shape == (n_chains, 500, 2)
    assert int(np.sum(info.n_divergences)) == 0
    for i in range(2):
        assert abs(z_score(x[..., i], MEAN[i])) < Z_MAX
        assert abs(z_score((x[..., i] - MEAN[i]) ** 2, COV[i, i])) < Z_MAX
    cross = (x[..., 0] - MEAN[0]) * (x[..., 1] - MEAN[1])
    assert abs(z_score(cross, COV[0, 1])) < Z_MAX
    assert float(np.mean(info.acceptance_rate)) > 0.6
    if dense_mass:
        # the adapted dense inverse mass estimates the covariance (windows of up to ~150 draws)
        np.testing.assert_allclose(np.mean(info.inverse_mass_matrix, 0), COV, rtol=0.5, atol=0.3)


def test_step_size_adaptation_reaches_the_target_acceptance():
    # Dual averaging on a 10-D Gaussian with scales 0.5..3 (identity mass, so the step size alone must
    # fit the narrowest direction). Dual averaging is not exact: the realised acceptance of its averaged
    # step size sits slightly above target; 0.08 is the margin (an engineering bound, not a probability).
    scales = jnp.linspace(0.5, 3.0, 10)
    hmc = HMC(step_size=1.0, n_leapfrogs=10, adapt_step_size=True, target_acceptance_rate=0.8)
    _, info = hmc.run(jax.random.key(3), lambda x: -0.5 * jnp.sum((x / scales) ** 2), jnp.zeros((4, 10)),
                      n_samples=300, n_warmup=300)
    assert abs(float(np.mean(info.acceptance_rate)) - 0.8) < 0.08
    assert np.all(np.asarray(info.step_size) < 1.0)


# ------------------------------------------------------------------ conjugate model with constrained latents
N_OBS, NOISE_SD = 20, 0.5


@ppl.meta_bayesian_net
def conjugate_model():
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(2), std=1.0, group_ndims=1)
    bn.normal("y", jnp.broadcast_to(w, (N_OBS, 2)), std=NOISE_SD, group_ndims=1)
    rate = bn.gamma("rate", 2.0, 1.0)
    bn.poisson("counts", jnp.broadcast_to(rate, (5,)))
    p = bn.beta("p", 2.0, 3.0)
    bn.bernoulli("k", probs=jnp.broadcast_to(p, (10,)))
    pi = bn.dirichlet("pi", jnp.ones(3))
    bn.categorical("c", probs=jnp.broadcast_to(pi, (12, 3)))
    return bn


Y = np.random.default_rng(0).normal([0.5, -1.0], NOISE_SD, size=(N_OBS, 2))
OBSERVED = {"y": jnp.asarray(Y, jnp.float32),
            "counts": jnp.array([3.0, 5.0, 4.0, 2.0, 6.0]),
            "k": jnp.array([1.0] * 7 + [0.0] * 3),
            "c": jnp.array([0] * 6 + [1] * 2 + [2] * 4, jnp.int32)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hmc", "nuts", "chees"])
def test_conjugate_posteriors_with_constrained_latents(name):
    # Normal-normal, gamma-Poisson, beta-Bernoulli and Dirichlet-categorical posteriors are known in
    # closed form; the positive, unit-interval and simplex latents are sampled on R^d with Jacobians.
    # 2+2 (w means, variances) + 2 (rate) + 2 (p) + 3 (pi means) = 11 comparisons: rate < 7.5e-5.
    # 200 draws per chain (x 8 or 32 chains) after 200 warmup: the z-scores use the measured ESS, so
    # the rate holds at any length; the ESS stays in the hundreds per quantity, enough for the MCSE.
    y, counts = OBSERVED["y"], OBSERVED["counts"]
    c = np.bincount(np.asarray(OBSERVED["c"]), minlength=3)
    n = N_CHAINS[name]
    samples, info = make_sampler(name).sample(jax.random.key(1), conjugate_model(), OBSERVED,
                                              init={"rate": 1.0}, n_samples=200, n_warmup=200, n_chains=n)
    assert samples["w"].shape == (n, 200, 2) and samples["rate"].shape == (n, 200)
    assert samples["pi"].shape == (n, 200, 3) and info.inverse_mass_matrix.shape == (n, 2 + 1 + 1 + 2)
    post_precision = 1.0 + N_OBS / NOISE_SD ** 2
    w_mean, w_var = np.asarray(y.sum(0)) / NOISE_SD ** 2 / post_precision, 1.0 / post_precision
    w = np.asarray(samples["w"])
    for i in range(2):
        assert abs(z_score(w[..., i], w_mean[i])) < Z_MAX
        assert abs(z_score((w[..., i] - w_mean[i]) ** 2, w_var)) < Z_MAX
    rate = stats.gamma(2.0 + float(counts.sum()), scale=1.0 / (1.0 + 5))
    p = stats.beta(2.0 + 7.0, 3.0 + 3.0)   # 7 successes in 10
    for posterior, x in [(rate, samples["rate"]), (p, samples["p"])]:
        x = np.asarray(x)
        assert abs(z_score(x, posterior.mean())) < Z_MAX
        assert abs(z_score((x - posterior.mean()) ** 2, posterior.var())) < Z_MAX
    alpha = 1.0 + np.asarray(c)
    pi = np.asarray(samples["pi"])
    np.testing.assert_allclose(pi.sum(-1), 1.0, atol=1e-5)   # samples returned on the simplex
    for i in range(3):
        assert abs(z_score(pi[..., i], alpha[i] / alpha.sum())) < Z_MAX
    p_samples = np.asarray(samples["p"])
    assert np.all(np.asarray(samples["rate"]) > 0) and np.all((p_samples > 0) & (p_samples < 1))


def test_sample_contract_and_errors():
    hmc = HMC(step_size=0.3, n_leapfrogs=5)
    log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
    run = lambda key: hmc.run(key, log_joint, jnp.zeros((2, 3)), n_samples=20, n_warmup=0, thinning=2)
    first, info = run(jax.random.key(0))
    again, _ = run(jax.random.key(0))
    np.testing.assert_array_equal(first, again)                    # same key, same result
    # the progress bar (host callbacks from the scan over time, outside the vmap over chains) changes
    # nothing in the numbers
    with_bar, _ = hmc.run(jax.random.key(0), log_joint, jnp.zeros((2, 3)), n_samples=20, n_warmup=0,
                          thinning=2, progress_bar=True)
    np.testing.assert_array_equal(first, with_bar)
    assert first.shape == (2, 20, 3) and info.acceptance_rate.shape == (2, 20)
    assert info.step_size.shape == (2,) and info.warmup_acceptance_rate.shape == (2, 0)
    assert np.all(np.isfinite(first))
    with pytest.raises(ValueError, match="n_chains"):
        hmc.run(jax.random.key(0), log_joint, {"a": jnp.zeros((2, 3)), "b": jnp.zeros((3,))}, 10)
    with pytest.raises(ValueError, match="n_leapfrogs"):
        HMC(n_leapfrogs=0)
    with pytest.raises(ValueError, match="mass_schedule"), pytest.warns(DeprecationWarning):
        HMC(mass_schedule="bogus")
    with pytest.raises(ValueError, match=r"init\['w'\] has shape \(3,\)"):
        HMC().sample(jax.random.key(0), conjugate_model(), OBSERVED, init={"w": jnp.zeros(3)}, n_samples=5,
                     n_warmup=0)
    with pytest.raises(TypeError, match="'counts' .* discrete"):
        HMC().sample(jax.random.key(0), conjugate_model(), {"y": OBSERVED["y"]}, n_samples=5, n_warmup=0)


def test_exponential_mass_schedule_adapts_to_the_scale():
    # ZhuSuan's moving-variance mass on independent N(0, 10^2) x N(0, 0.1^2): the adapted inverse mass
    # must follow the variances (100 and 0.01) within a factor 3, and the acceptance must approach 0.8.
    scales = jnp.array([10.0, 0.1])
    log_joint = lambda x: -0.5 * jnp.sum((x / scales) ** 2)
    hmc = HMC(step_size=0.05, n_leapfrogs=10, adaptation="exponential", mass_decay=0.98)
    _, info = hmc.run(jax.random.key(2), log_joint, jnp.zeros((4, 2)) + 0.05, n_samples=200, n_warmup=400)
    ratio = np.asarray(info.inverse_mass_matrix) / np.array([100.0, 0.01])
    assert np.all((ratio > 1 / 3) & (ratio < 3))
    assert abs(float(np.mean(info.acceptance_rate)) - 0.8) < 0.15
