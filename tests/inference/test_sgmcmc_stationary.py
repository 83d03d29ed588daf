"""SG-MCMC samplers leave the right distribution invariant (full-batch gradients).

Gaussian / Laplace targets: z-tests of the mean and second moment against their Monte Carlo
standard error, estimated from the spread of per-chain averages over 128 independent vmapped chains
(valid whatever the autocorrelation within a chain). Double well: ZhuSuan's kernel-density check
(Fig. 1 of Chen, Fox and Guestrin, 2014).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from inference.sgmcmc.psgld import PSGLD
from inference.sgmcmc.sghmc import SGHMC
from inference.sgmcmc.sgld import SGLD
from inference.sgmcmc.sgnht import SGNHT

pytestmark = pytest.mark.slow

MEAN = jnp.array([1.0, -2.0])
SCALE = jnp.array([1.0, 0.5])
N_CHAINS, N_BURNIN, N_KEEP = 128, 1000, 3000
# Chains start at the mean; after 1000 burn-in steps the variance transient is below e^-5.
# |z| < 4.5 fails with probability 1.5e-5 for a t statistic with 127 dof. The samplers'
# O(learning_rate) discretisation bias at learning_rate=0.005 is at most 0.6% of the variance
# (exact stationary variances of these linear recursions from the discrete Lyapunov equation:
# SGLD +0.13% / +0.50%, SGHMC second order -0.2%, first order +0.14% / +0.57%), against an MCSE
# of about 3-5% (below 0.2 MCSE), so each assertion fails with probability < 3e-5 and the 23
# assertions of this file together < 1e-3.
Z_MAX = 4.5


def _chain_moments(sampler, grad_fn, key, start):
    def chain(chain_key):
        def body(state, t):
            state, _ = sampler.update(jax.random.fold_in(chain_key, t), state, grad_fn)
            return state, state.position["z"]

        state, _ = jax.lax.scan(body, sampler.init({"z": start}), jnp.arange(N_BURNIN))
        _, xs = jax.lax.scan(body, state, jnp.arange(N_BURNIN, N_BURNIN + N_KEEP))
        return jnp.mean(xs, 0), jnp.mean(jnp.abs(xs - MEAN), 0), jnp.mean((xs - MEAN) ** 2, 0)

    moments = jax.jit(jax.vmap(chain))(jax.random.split(key, N_CHAINS))
    return [np.asarray(m) for m in moments]


def _z(per_chain, expected):
    return (per_chain.mean(0) - expected) / (per_chain.std(0, ddof=1) / np.sqrt(per_chain.shape[0]))


GAUSSIAN_SAMPLERS = {
    "sgld": SGLD(0.005),
    "sghmc": SGHMC(0.005),  # ZhuSuan's defaults: friction 0.25, resample every 20, second order
    # first order without resampling: resampling v ~ N(0, eta) every 20 steps ignores the
    # position-velocity correlation of the first-order recursion and biases the variance by about
    # -3% (Lyapunov), which this test would detect; ZhuSuan's integrator has that property too.
    "sghmc_first_order": SGHMC(0.005, n_iter_resample_v=None, second_order=False),
    # SGNHT needs injected noise with exact gradients (variance_extra=0 is deterministic dynamics)
    "sgnht": SGNHT(0.005, variance_extra=0.25),
    "sgnht_scalar_alpha": SGNHT(0.005, variance_extra=0.25, use_vector_alpha=False, n_iter_resample_v=50),
}


@pytest.mark.parametrize("name", sorted(GAUSSIAN_SAMPLERS))
def test_gaussian_moments(name):
    grad_fn = lambda position: {"z": -(position["z"] - MEAN) / SCALE**2}
    mean, _, var = _chain_moments(GAUSSIAN_SAMPLERS[name], grad_fn, jax.random.key(0), MEAN)
    np.testing.assert_array_less(np.abs(_z(mean, MEAN)), Z_MAX)
    np.testing.assert_array_less(np.abs(_z(var, SCALE**2)), Z_MAX)


def test_psgld_laplace_moments():
    # On a Laplace target g * g = 1 / scale^2 everywhere, so the RMSprop average V reaches it
    # exactly and the preconditioner G = 1 / (epsilon + 1 / scale) is constant: pSGLD is then SGLD
    # with a fixed diagonal preconditioner and the dropped Gamma term is exactly zero. (Where G
    # depends on the position, dropping Gamma biases pSGLD: +5..100% in the variance of a Gaussian
    # for decay 0.9999..0.9, as in Li et al., 2016.) Same threshold basis as above; the
    # discretisation bias at an effective step 0.005 * scale is below 0.5 MCSE (measured <1%).
    grad_fn = lambda position: {"z": -jnp.sign(position["z"] - MEAN) / SCALE}
    mean, abs_dev, var = _chain_moments(PSGLD(0.005), grad_fn, jax.random.key(1), MEAN + 0.1)
    np.testing.assert_array_less(np.abs(_z(mean, MEAN)), Z_MAX)
    np.testing.assert_array_less(np.abs(_z(abs_dev, SCALE)), Z_MAX)
    np.testing.assert_array_less(np.abs(_z(var, 2 * SCALE**2)), Z_MAX)


def _double_well_error(sampler, key, n_chains=100, n_iters=8000, thin=50):
    """Mean absolute error of a Gaussian KDE of the samples against p(x) ~ exp(2 x^2 - x^4) on
    [-3, 3], with ZhuSuan's protocol (tests/test_sgmcmc.py): 100 chains from 0, 8000 steps, the
    first 2/3 discarded, every 50th kept."""
    grad_fn = jax.grad(lambda position: jnp.sum(2 * position["x"] ** 2 - position["x"] ** 4))

    def chain(chain_key):
        def body(state, t):
            state, _ = sampler.update(jax.random.fold_in(chain_key, t), state, grad_fn)
            return state, state.position["x"]

        return jax.lax.scan(body, sampler.init({"x": jnp.zeros(())}), jnp.arange(n_iters))[1]

    xs = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(key, n_chains)))
    steps = np.arange(n_iters)
    samples = xs[:, (steps >= n_iters * 2 // 3) & (steps % thin == 0)].reshape(-1)
    grid = np.linspace(-3, 3, 1000)
    pdf = np.exp(2 * grid**2 - grid**4)
    pdf = pdf / pdf.mean() / 6
    return np.abs(stats.gaussian_kde(samples)(grid) - pdf).mean()


# Thresholds: ZhuSuan's (SGLD 0.023, SGHMC 0.016: "6 sd upper bound from 10 independent runs"),
# and for SGNHT ours by the same rule. Our 10 runs (keys 1000..1009) gave mean / sd: SGLD
# 0.0164 / 0.0016, SGHMC first order 0.0092 / 0.0013, second order 0.0117 / 0.0009, SGNHT
# 0.0148 / 0.0017 (mean + 6 sd = 0.025), so each check fails with probability < 1e-8 if the
# error is roughly normal. A sampler with the noise scale off by sqrt(2) gives errors > 0.05.
DOUBLE_WELL = {
    "sgld": (SGLD(0.01), 0.023),
    "sghmc_first_order": (SGHMC(0.01, friction=0.3, variance_estimate=0.02, n_iter_resample_v=50,
                                second_order=False), 0.016),
    "sghmc": (SGHMC(0.01, friction=0.3, variance_estimate=0.02, n_iter_resample_v=50), 0.016),
    "sgnht": (SGNHT(0.01, variance_extra=0.3, n_iter_resample_v=50), 0.025),
}


@pytest.mark.parametrize("name", sorted(DOUBLE_WELL))
def test_double_well_density(name):
    sampler, threshold = DOUBLE_WELL[name]
    assert _double_well_error(sampler, jax.random.key(7)) < threshold
