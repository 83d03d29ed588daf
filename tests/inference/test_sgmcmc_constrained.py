"""SG-MCMC on constrained latents: a gamma latent moves on log space (Jacobian added), comes back
positive, and its posterior mean matches the closed form of a gamma-Poisson conjugate model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from inference import sgmcmc

PRIOR_SHAPE, PRIOR_RATE = 2.0, 1.0
N, BATCH_SIZE, N_CHAINS = 40, 4, 32
COUNTS = np.random.default_rng(0).poisson(0.3, N).astype(np.float32)
POST_SHAPE, POST_RATE = PRIOR_SHAPE + COUNTS.sum(), PRIOR_RATE + N      # Gamma(14, 41) for these counts
POST_MEAN, POST_SD = POST_SHAPE / POST_RATE, np.sqrt(POST_SHAPE) / POST_RATE
LOG_VARIANCE = 1.0 / POST_SHAPE     # about the posterior variance of u = log(rate)


@ppl.meta_bayesian_net
def gamma_poisson(batch_size):
    bn = ppl.BayesianNet()
    rate = bn.gamma("rate", PRIOR_SHAPE, PRIOR_RATE)
    bn.poisson("y", jnp.broadcast_to(rate, (batch_size,)), group_ndims=1)
    return bn


def model_fn(batch):
    model = gamma_poisson(batch["y"].shape[0])
    model.log_joint = sgmcmc.scaled_log_joint(N / batch["y"].shape[0], ["y"])
    return model, {"y": batch["y"]}


def posterior_draws(seed):
    """Exact posterior draws, one per chain: the chains start at stationarity (no warmup program)."""
    draws = np.random.default_rng(seed).gamma(POST_SHAPE, 1.0 / POST_RATE, N_CHAINS)
    return {"rate": jnp.asarray(draws, jnp.float32)}


def run(sampler, init, n_epochs, **kwargs):
    return sgmcmc.sample(jax.random.key(1), sampler, model_fn, {"y": COUNTS}, init, batch_size=BATCH_SIZE,
                         n_epochs=n_epochs, n_chains=N_CHAINS,
                         is_init_batched="rate" in init and init["rate"].ndim == 1,
                         progress_bar=False, **kwargs)


@pytest.mark.parametrize("sampler", [sgmcmc.SGLD(0.1 * LOG_VARIANCE), sgmcmc.SGHMC(0.05 * LOG_VARIANCE)],
                         ids=["sgld", "sghmc"])
def test_gamma_posterior_mean_matches_the_closed_form(sampler):
    # 32 independent chains x 1000 steps started from exact draws. Tolerance: 4.5 MCSE (the spread of
    # the 32 chain means; a t statistic with 31 dof exceeds 4.5 with probability ~1e-4) plus 0.05
    # posterior sd for the bias of a constant step with minibatch gradients: it inflates the variance
    # of u = log(rate) by eps <~ 25% here (SGLD: lr / (4 var) + lr Var(g) / 4; measured sd +4% SGLD,
    # +11% SGHMC), which moves E[exp(u)] by about var(u) eps / 2 ~ 0.9% of the mean ~ 0.03 sd.
    # Leaving out the Jacobian would shift the mean by 1 / POST_RATE ~ 0.27 sd (8-20 MCSE, measured).
    result = run(sampler, posterior_draws(0), n_epochs=100)
    rate = np.asarray(result.samples["rate"], np.float64)
    assert rate.shape == (N_CHAINS, 1000) and np.all(rate > 0)
    mcse = rate.mean(axis=1).std(ddof=1) / np.sqrt(N_CHAINS)
    assert abs(rate.mean() - POST_MEAN) < 4.5 * mcse + 0.05 * POST_SD, (rate.mean(), POST_MEAN, mcse)
    assert np.all(result.state.sampler.position["rate"] < 0)   # the state is log(rate): rates < 1 here
    assert not np.any(result.info.is_rejected)


SAMPLERS = {"sgld": sgmcmc.SGLD(0.02), "psgld": sgmcmc.PSGLD(0.02, correction=True),
            "sghmc": sgmcmc.SGHMC(0.02), "sgnht": sgmcmc.SGNHT(0.02, variance_extra=0.1)}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_gamma_latent_is_never_negative(name):
    # Started near 0 with large steps (the constrained-space noise sqrt(0.02) = 0.14 is 1.5 posterior
    # sds): every sample is a positive, finite rate, and a resumed run stays so.
    result = run(SAMPLERS[name], {"rate": jnp.asarray(0.01)}, n_epochs=3)
    resumed = run(SAMPLERS[name], {}, n_epochs=1, resume=result.state)
    for rate in (result.samples["rate"], resumed.samples["rate"]):
        assert np.all(np.isfinite(rate)) and np.all(rate > 0), rate.min()


def test_float64_keeps_the_dtype_on_both_spaces():
    with jax.enable_x64(True):
        counts = {"y": COUNTS.astype(np.float64)}
        result = sgmcmc.sample(jax.random.key(0), sgmcmc.SGLD(0.02), model_fn, counts,
                               {"rate": jnp.asarray(0.5, jnp.float64)}, batch_size=BATCH_SIZE, n_epochs=1,
                               progress_bar=False)
        assert result.samples["rate"].dtype == np.float64 and np.all(result.samples["rate"] > 0)
        assert result.state.sampler.position["rate"].dtype == jnp.float64


def test_bad_starts_are_errors_naming_the_latent():
    with pytest.raises(ValueError, match=r"init\['rate'\].*outside the latent's support"):
        run(sgmcmc.SGLD(0.01), {"rate": jnp.asarray(-1.0)}, n_epochs=1)
    with pytest.raises(ValueError, match=r"init\['rate'\] is not finite"):
        run(sgmcmc.SGLD(0.01), {"rate": jnp.asarray(np.nan)}, n_epochs=1)
    with pytest.raises(ValueError, match=r"init gives \['y'\]"):
        run(sgmcmc.SGLD(0.01), {"rate": jnp.asarray(1.0), "y": jnp.zeros(4)}, n_epochs=1)
