# %% [markdown]
# # 7. Gaussian processes: an exact GP on Mauna Loa CO2, and a sparse variational GP
#
# A Gaussian process puts a prior on functions through a covariance function (kernel). We first
# look at what the kernels in `models.gp.kernels` say about functions, then fit an **exact GP** with a
# composite kernel to the Mauna Loa CO2 record by maximising the marginal likelihood (type-II maximum
# likelihood), and extrapolate it ten years. Finally a **sparse variational GP** (SVGP), written as a
# DSL model and trained by minibatch SGVB, regresses Boston house prices through a few dozen
# inducing points.
#
# Data, all installed with the packages (no downloads): the weekly CO2 concentrations at Mauna Loa
# 1958-2001 from `statsmodels` (`models.gp.cli.load_co2()` averages them by month; we keep every other
# month, train on 1958-1990 and hold out 1991-2001), and the Boston housing prices from `mlxtend`
# (split 0 of the UCI protocol: 455 training, 51 test houses). `SCALE` sets the number of optimiser
# steps: the default keeps the notebook around a minute on a laptop CPU. `python -m models gp` runs
# the same fits from the command line (`--dataset co2`, or `--dataset boston` over all 20 splits).

# %%
SCALE = 1
N_STEPS_CO2 = 400 * SCALE           # Adam steps on the CO2 marginal likelihood
N_EPOCHS_SVGP = 143 * SCALE        # SGVB epochs of the SVGP (7 steps each: ~1000 steps)

import inspect
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import ppl
from models.gp import cli as gp
from models.gp import exact as gp_exact
from models.gp import kernels
from models.gp import svgp
from models.data import uci

# %% [markdown]
# ## Kernels
#
# A kernel is a pure function `k(x1 [n1, d], x2 [n2, d]) -> K [n1, n2]` with its hyperparameters as
# keyword arguments; bind them with `functools.partial`, and combine kernels with `kernels.add`
# (a sum of independent processes) and `kernels.multiply`. To see what each one means, we draw three
# functions from each GP prior: a DSL node `f ~ N(0, K)` with `K`'s Cholesky factor
# (`multivariate_normal_cholesky`), sampled three times with `n_samples=3`.

# %%
PRIORS = {
    "RBF": partial(kernels.rbf, lengthscale=1.0),
    "Matern 3/2": partial(kernels.matern32, lengthscale=1.0),
    "periodic (period 2)": partial(kernels.periodic, period=2.0, lengthscale=1.0),
    "linear": partial(kernels.linear, variance=0.3, offset=2.0),
    "linear + periodic": kernels.add(partial(kernels.linear, variance=0.3, offset=2.0),
                                     partial(kernels.periodic, period=2.0, variance=0.3)),
    "RBF x periodic": kernels.multiply(partial(kernels.rbf, lengthscale=3.0),
                                       partial(kernels.periodic, period=1.0)),
}
x_grid = jnp.linspace(0.0, 8.0, 200)[:, None]


@jax.jit
def prior_draws(key, cov):
    bn = ppl.BayesianNet(key=key)
    chol = jnp.linalg.cholesky(cov + 1e-4 * jnp.eye(cov.shape[0]))     # jitter for a stable factor
    return bn.multivariate_normal_cholesky("f", jnp.zeros(cov.shape[0]), chol, n_samples=3)


fig, axes = plt.subplots(2, 3, figsize=(12, 5), sharex=True)
for ax, (name, kernel), key in zip(axes.flat, PRIORS.items(), jax.random.split(jax.random.key(0), 6)):
    f = prior_draws(key, kernel(x_grid, x_grid))                          # [3, 200]
    ax.plot(x_grid[:, 0], f.T)
    ax.set_title(name)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Mauna Loa CO2: the data
#
# `gp.load_co2()` gives monthly means. An exact GP costs `O(n^3)`, so we keep every other month
# (about 200 training points: a fit takes seconds), work in years since the first month, and
# standardise the concentration with the training period's mean and standard deviation.

# %%
years, ppm = gp.load_co2()
years, ppm = years[::2], ppm[::2]
is_train = years < 1991
YEAR0, PPM_MEAN, PPM_STD = years[0], ppm[is_train].mean(), ppm[is_train].std()
x = jnp.asarray(years - YEAR0, jnp.float32)[:, None]
y = jnp.asarray((ppm - PPM_MEAN) / PPM_STD, jnp.float32)
x_train, y_train, x_test = x[is_train], y[is_train], x[~is_train]
print(f"{len(years)} months, {years[0]:.2f} to {years[-1]:.2f}; train {int(is_train.sum())}, "
      f"held out {int((~is_train).sum())}")

# %% [markdown]
# ## A composite kernel
#
# After Rasmussen and Williams (2006, section 5.4.3): a smooth long-term **trend** (RBF with a long
# lengthscale), a **seasonal** cycle that may slowly change shape (periodic times RBF), and
# medium-term **irregularities** (Matern 3/2), plus white observation noise. The hyperparameters are
# a NamedTuple of logarithms, so unconstrained gradient steps keep them positive; `models.gp.exact`
# accepts any kernel given as `params -> kernel function`, as long as `params` has a
# `log_noise_variance` field. (This is `models.gp.cli.co2_kernel`.)

# %%
class CO2Params(NamedTuple):
    log_trend: jax.Array           # [2]: variance, lengthscale (years)
    log_seasonal: jax.Array        # [4]: variance, decay lengthscale, periodic lengthscale, period (years)
    log_irregular: jax.Array       # [2]: variance, lengthscale (years)
    log_noise_variance: jax.Array  # []


def co2_kernel(params):
    trend, season, irregular = (jnp.exp(p) for p in params[:3])
    return kernels.add(
        partial(kernels.rbf, variance=trend[0], lengthscale=trend[1]),
        kernels.multiply(partial(kernels.rbf, variance=season[0], lengthscale=season[1]),
                         partial(kernels.periodic, lengthscale=season[2], period=season[3])),
        partial(kernels.matern32, variance=irregular[0], lengthscale=irregular[1]))


start = CO2Params(log_trend=jnp.log(jnp.array([1.0, 50.0])),
                  log_seasonal=jnp.log(jnp.array([0.01, 100.0, 1.0, 1.0])),
                  log_irregular=jnp.log(jnp.array([0.01, 1.0])),
                  log_noise_variance=jnp.log(jnp.array(0.001)))

# %% [markdown]
# ## The marginal likelihood in the DSL, and type-II maximum likelihood
#
# With the latent function integrated out, the GP is one DSL node,
# `y ~ N(0, K(x, x) + noise_variance I)` (`gp_exact.build_exact_gp`): observing the targets, its
# `log_joint()` is the log marginal likelihood `log p(y | x, hyperparameters)`.
# `gp_exact.fit_exact` maximises it with Adam (full-batch steps through `inference.fit`), and its
# history holds the trace.

# %%
model = gp_exact.build_exact_gp(start, x_train, co2_kernel)
print("log p(y | x) at the start:", model.observe(y=y_train).log_joint(), "nats")

co2_fit = gp_exact.fit_exact(x_train, y_train, co2_kernel, start, n_steps=N_STEPS_CO2, learning_rate=0.02)
params, trace = co2_fit.params, co2_fit.history["log_marginal_likelihood"]
trend, season, irregular = (np.exp(np.asarray(p)) for p in params[:3])
print(f"log p(y | x) after {N_STEPS_CO2} steps: {float(trace[-1]):.1f} nats")
print(f"trend lengthscale {trend[1]:.0f} y; season: period {season[3]:.3f} y, amplitude "
      f"{np.sqrt(season[0]) * PPM_STD:.1f} ppm, decay {season[1]:.0f} y; irregularities "
      f"{np.sqrt(irregular[0]) * PPM_STD:.2f} ppm over {irregular[1]:.2f} y; noise sd "
      f"{np.sqrt(np.exp(float(params.log_noise_variance))) * PPM_STD:.2f} ppm")
plt.figure(figsize=(5, 3))
plt.plot(trace)
plt.xlabel("Adam step")
plt.ylabel("log marginal likelihood (nats)")
plt.show()

# %% [markdown]
# ## The posterior and the extrapolation
#
# `gp_exact.exact_posterior` gives the posterior mean and variance of the latent function at new
# inputs (Rasmussen and Williams, algorithm 2.1); adding the noise variance gives the predictive
# distribution of a new monthly mean. We score the held-out decade and plot the mean with a 95%
# interval up to 2005.

# %%
x_plot = jnp.linspace(0.0, 2005.0 - YEAR0, 700)[:, None]
posterior_fn = jax.jit(gp_exact.exact_posterior, static_argnames="kernel")   # one compiled call
mean, variance = posterior_fn(params, x_train, y_train, jnp.concatenate([x_test, x_plot]), kernel=co2_kernel)
variance = variance + jnp.exp(params.log_noise_variance)
mean = np.asarray(mean) * PPM_STD + PPM_MEAN
sd = np.sqrt(np.asarray(variance)) * PPM_STD
n_test = len(x_test)
print(f"held-out 1991-2001: RMSE {np.sqrt(np.mean((mean[:n_test] - ppm[~is_train]) ** 2)):.2f} ppm, "
      f"NLL {gp.gaussian_nll(ppm[~is_train], mean[:n_test], sd[:n_test] ** 2):.2f} nats per month")

grid, mean, sd = np.asarray(x_plot[:, 0]) + YEAR0, mean[n_test:], sd[n_test:]
fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
for ax, (low, high) in zip(axes, [(1958, 2005), (1985, 2005)]):
    shown = (grid >= low) & (grid <= high)
    ax.plot(years[is_train], ppm[is_train], "k.", ms=2, label="train (every other month)")
    ax.plot(years[~is_train], ppm[~is_train], "r.", ms=2, label="held out")
    ax.plot(grid[shown], mean[shown], "b-", lw=1, label="posterior mean")
    ax.fill_between(grid[shown], (mean - 1.96 * sd)[shown], (mean + 1.96 * sd)[shown], color="b", alpha=0.2,
                    label="95% interval")
    ax.set(xlim=(low, high), xlabel="year", ylabel="CO2 (ppm)")
    ax.xaxis.set_major_locator(plt.MultipleLocator(5))
    ax.set_ylim(ppm[years >= low].min() - 3, mean[shown].max() + 5)
axes[0].legend(loc="upper left")
axes[0].set_title("Mauna Loa CO2, exact GP")
axes[1].set_title("the extrapolation")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A sparse variational GP on Boston housing
#
# An exact GP costs `O(N^3)`. An SVGP (Hensman et al., 2013) summarises the function by its values
# `u` at `m` inducing inputs `Z`, and fits a Gaussian `q(u)` by maximising the ELBO on minibatches, at
# `O(B m^2 + m^3)` per step. `models.gp.svgp` writes it in the DSL, *whitened*: `u = L v` with
# `L = chol(K(Z, Z))` and `v ~ N(0, I)`, which makes the optimisation much better conditioned.
#
# - model (`svgp.build_svgp`): `v ~ N(0, I)` `[m]`; `f | v ~ N(A^T v, k(x, x) - diag(A^T A))` with
#   `A = L^-1 K(Z, x)`; `y | f ~ N(f, noise_variance)`;
# - variational net (`svgp.build_svgp_variational`): `q(v) = N(mean, S S^T)`, and `f | v` as in the
#   model, so `p(f | v)` cancels in the ELBO;
# - `svgp.svgp_elbo` conditions the model on `q`'s samples with `inference.elbo`, after setting
#   `model.log_joint` to rescale the likelihood of a minibatch of `B` points by `N / B`.
#
# Here are the model and the objective as `models.gp.svgp` writes them:

# %%
print(inspect.getsource(svgp.build_svgp))
print(inspect.getsource(svgp.svgp_elbo))

# %% [markdown]
# Inputs and targets are standardised; the kernel is an RBF with one lengthscale per feature, and the
# 50 inducing inputs start at randomly chosen training inputs. Kernel hyperparameters, inducing
# inputs and `q(v)` are all trained together by Adam on minibatches of 64 houses (`svgp.fit_svgp`,
# through `inference.fit`); its history holds each epoch's mean minibatch estimate of the ELBO per house.

# %%
N_INDUCING, BATCH_SIZE = 50, 64
data = uci.standardize(uci.load_uci("boston", split=0))
x_boston = jnp.asarray(data.x_train, jnp.float32)
y_boston = jnp.asarray(data.y_train, jnp.float32)
hyper = gp_exact.init_params(x_boston.shape[1], lengthscale=np.sqrt(x_boston.shape[1]), noise_variance=0.1)
key_init, key_fit = jax.random.split(jax.random.key(1))
params0 = svgp.init_svgp_params(key_init, x_boston, N_INDUCING, hyper)

svgp_result = svgp.fit_svgp(key_fit, params0, x_boston, y_boston, n_epochs=N_EPOCHS_SVGP,
                            batch_size=BATCH_SIZE, n_particles=4, learning_rate=0.02)
svgp_params, elbo_trace = svgp_result.params, svgp_result.history["elbo"]

# %% [markdown]
# How good is the sparse approximation? With the hyperparameters the SVGP learned, the exact GP's
# log marginal likelihood bounds the ELBO from above, and its posterior is what the SVGP
# approximates; at 455 houses one Cholesky factorisation computes both. We compare test RMSE and
# negative log-likelihood (NLL, of a Gaussian predictive per test house) in k$.

# %%
x_test = jnp.asarray(data.x_test, jnp.float32)
y_test = data.unstandardize_y(data.y_test)
exact_lml = jax.jit(gp_exact.log_marginal_likelihood)(svgp_params.hyper, x_boston, y_boston)
mean, variance = posterior_fn(svgp_params.hyper, x_boston, y_boston, x_test, kernel="rbf")
noise_variance = jnp.exp(svgp_params.hyper.log_noise_variance)
predictions = {f"SVGP, {N_INDUCING} inducing points": jax.jit(svgp.predict_svgp)(svgp_params, x_test),
               "exact GP, the same hyperparameters": (mean, variance + noise_variance)}
print(f"per house: final ELBO {float(np.mean(elbo_trace[-15:])):.3f}, exact log p(y | x) "
      f"{float(exact_lml) / len(x_boston):.3f} nats")
print(f"{'':35s} test RMSE (k$)   test NLL (nats per house)")
for name, (mean, variance) in predictions.items():
    mean, variance = data.unstandardize_y(np.asarray(mean)), np.asarray(variance) * data.y_std**2
    predictions[name] = mean, np.sqrt(variance)
    print(f"{name:35s} {np.sqrt(np.mean((mean - y_test) ** 2)):10.3f}        "
          f"{gp.gaussian_nll(y_test, mean, variance):10.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
axes[0].plot(elbo_trace, label="ELBO / N (epoch means of minibatch estimates)")
axes[0].axhline(exact_lml / len(x_boston), color="k", ls="--",
                label="exact log p(y | x) / N (final hyperparameters)")
axes[0].set(xlabel="epoch (7 Adam steps)", ylabel="nats per house", ylim=(-2.0, 0.0))
axes[0].legend(loc="lower right")
lims = [y_test.min() - 2, y_test.max() + 2]
for ax, (name, (mean, sd)) in zip(axes[1:], predictions.items()):
    ax.errorbar(y_test, mean, yerr=1.96 * sd, fmt="o", ms=3, alpha=0.6, label="mean +- 1.96 sd")
    ax.plot(lims, lims, "k--", lw=1)
    ax.set(title=name, xlabel="true price (k$)", ylabel="predicted price (k$)")
axes[1].legend(loc="upper left")
fig.tight_layout()
plt.show()
