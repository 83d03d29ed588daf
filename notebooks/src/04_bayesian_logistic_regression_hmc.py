# %% [markdown]
# # 4. Bayesian logistic regression with NUTS: parallel chains, adaptation, diagnostics
#
# We sample the posterior of a logistic regression's weights with the No-U-Turn Sampler (Hoffman
# and Gelman, 2014, [The No-U-Turn Sampler](https://arxiv.org/abs/1111.4246)), the Hamiltonian Monte
# Carlo variant (Neal, 2011, [MCMC using Hamiltonian dynamics](https://arxiv.org/abs/1206.1901))
# that picks each trajectory's length itself, as in ZhuSuan's HMC tutorial but without a number of
# leapfrog steps to tune: several chains run in parallel in one compiled program, the step size and
# a diagonal mass matrix adapt during warmup, and we check the result with effective sample sizes,
# split R-hat, trace plots and ArviZ. Then we continue the run, and use the posterior to predict
# held-out labels.
#
# The data are scikit-learn's breast cancer set, packaged with scikit-learn (569 tumours, 30
# features, standardised; 455 for training, 114 held out). `SCALE` below sets the number of draws:
# the default runs in well under a minute on a laptop CPU.

# %%
SCALE = 1
N_CHAINS = 4
N_WARMUP = 500 * SCALE      # adaptation iterations per chain (discarded)
N_SAMPLES = 500 * SCALE     # kept draws per chain

import arviz as az
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import inference
from models import blr

x_train, y_train, x_test, y_test = blr.load_breast_cancer(seed=0)
print("train", x_train.shape, "test", x_test.shape, "fraction benign", y_train.mean().round(3))

# %% [markdown]
# ## The model: `models/blr.py`
#
# `w ~ N(0, I)` over the 30 standardised features plus an intercept (the last column of `x` is
# ones), and `y | x, w ~ Bernoulli(logits = x w)`. Given held-out features `x_test`, the model
# also computes a deterministic node, the probability of a benign tumour at each held-out input.
# In essence, `blr.build_blr` is:
#
# ```python
# @ppl.meta_bayesian_net
# def build_blr(x, alpha=1.0, x_test=None):
#     bn = ppl.BayesianNet()
#     w = bn.normal("w", jnp.zeros(x.shape[1]), std=alpha, group_ndims=1)
#     bn.bernoulli("y", logits=x @ w, group_ndims=1)
#     if x_test is not None:
#         bn.deterministic("test_probs", jax.nn.sigmoid(x_test @ w))
#     return bn
# ```
#
# Observing `y` leaves `w` as the only latent: NUTS samples `p(w | x, y)`, and returns the
# deterministic `test_probs` of every draw beside it.

# %%
model = blr.build_blr(jnp.asarray(x_train), x_test=jnp.asarray(x_test))
observed = {"y": jnp.asarray(y_train)}
bn = model.observe(jax.random.key(0), **observed)       # w drawn from the prior, y observed
print(bn, "w:", bn["w"].value.shape, "y:", bn["y"].value.shape, "log p(y, w):", bn.log_joint())

# %% [markdown]
# ## The log joint as a plain JAX function
#
# `inference.log_joint_fn(model, observed)` returns `position -> log p(y, w)`, a function of a dict
# of latent values (on an unconstrained space; `w` is already unconstrained). Any JAX tool can use
# it: `jax.grad`, an optimiser, or another sampler library. Here SciPy-style BFGS from
# `jax.scipy.optimize` finds the posterior mode (MAP), which we mark on the posterior histograms below.

# %%
log_joint = inference.log_joint_fn(model, observed)
w0 = jnp.zeros(x_train.shape[1])
print("log p(y, w=0):", log_joint({"w": w0}), " gradient shape:", jax.grad(log_joint)({"w": w0})["w"].shape)

w_map = jax.scipy.optimize.minimize(lambda w: -log_joint({"w": w}), w0, method="BFGS").x
print("MAP: log p(y, w_map) =", log_joint({"w": w_map}))

# %% [markdown]
# ## Sampling: parallel chains with adaptation
#
# `NUTS()` binds the configuration. Each transition integrates Hamilton's equations forward and
# backward in time, doubling the trajectory until it starts to turn back on itself (the
# generalised no-U-turn criterion, with the extra checks across subtrees that Stan uses), and draws
# the next state from the trajectory's points. During warmup (`adaptation="window"`, the default)
# the step size is tuned by dual averaging towards an acceptance statistic of 0.8, and a diagonal
# inverse mass matrix, the posterior variances, is estimated in Stan's expanding windows.
# `sample(key, model, observed, init, ...)` runs warmup and sampling for all chains (`jax.vmap`
# over chains, one `lax.scan` over time) as one compiled program. Each chain starts at its own
# over-dispersed point: `init` with a leading `[n_chains]` axis.
#
# For contrast we also run ZhuSuan's plain HMC (10 leapfrog steps) without adaptation, at its
# initial step size. `sample` returns every latent and deterministic node by default;
# `return_nodes=` names the ones to keep: the contrast run needs only the weights.

# %%
key_init, key_adapted, key_fixed = jax.random.split(jax.random.key(1), 3)
init = {"w": jax.random.normal(key_init, (N_CHAINS, x_train.shape[1]))}

nuts = inference.NUTS(step_size=0.05)
result = nuts.sample(key_adapted, model, observed, init, n_samples=N_SAMPLES, n_warmup=N_WARMUP)
samples, info = result          # an MCMCResult unpacks into samples and info; result.state continues it

fixed_hmc = inference.HMC(step_size=0.05, n_leapfrogs=10)
fixed_samples, fixed_info = fixed_hmc.sample(key_fixed, model, observed, init, n_samples=N_SAMPLES,
                                             n_warmup=N_WARMUP, return_nodes=["w"])

w = np.asarray(samples["w"])
print("samples:", {name: value.shape for name, value in samples.items()}, "= [n_chains, n_samples, ...];",
      "fixed HMC kept:", list(fixed_samples))

# %% [markdown]
# ## What the sampler reports
#
# `info` is an `HMCSampleInfo`: per-draw acceptance statistics, divergences, energies, log-joint
# values, leapfrog steps (gradient evaluations) and, for NUTS, tree depths; per chain the adapted
# step size and inverse mass matrix. The acceptance statistic should sit near (often a little
# above) the 0.8 target; divergent transitions (an energy error above 1000 nats) would point to
# regions the integrator cannot follow. NUTS chose the trajectory lengths below itself.

# %%
for name, run in [("NUTS", info), ("fixed HMC", fixed_info)]:
    print(f"{name:>9}: acceptance per chain {np.round(np.mean(run.acceptance_rate, axis=1), 3)}, "
          f"divergences {np.asarray(run.n_divergences)}, step size {np.round(np.asarray(run.step_size), 4)}, "
          f"leapfrog steps per draw {np.mean(run.n_leapfrogs):.1f}")
print("NUTS tree depths:", dict(zip(*np.unique(np.asarray(info.tree_depth), return_counts=True), strict=True)))

plt.figure(figsize=(9, 3))
plt.subplot(1, 2, 1)
window = 25
for chain in np.asarray(info.warmup_acceptance_rate):
    plt.plot(np.convolve(chain, np.ones(window) / window, mode="valid"), lw=0.8)
plt.axhline(0.8, color="k", ls="--", lw=0.8)
plt.xlabel("warmup iteration")
plt.ylabel("acceptance rate (smoothed)")
plt.subplot(1, 2, 2)
plt.plot(np.asarray(info.inverse_mass_matrix[0]), w.var(axis=(0, 1)), "o", ms=3)
plt.axline((0, 0), slope=1, color="k", lw=0.8)
plt.xlabel("adapted inverse mass (chain 0)")
plt.ylabel("posterior variance")
plt.tight_layout()
plt.show()

# %% [markdown]
# Left: dual averaging pulls the acceptance rate to the target; the dips mark the ends of Stan's
# mass-adaptation windows, where the new mass matrix arrives and the step size search restarts.
# Sampling then uses the averaged step size, which gives a rate a little above the target.
# Right: the adapted inverse mass matrix follows the posterior variances (the line is y = x), which
# differ by a factor of about five between weights: with it, one step size suits every direction.
#
# ## Diagnostics: effective sample size and split R-hat
#
# Successive HMC draws are correlated, so `N_CHAINS * N_SAMPLES` draws carry less information than
# as many independent ones. `inference.effective_sample_size` estimates the equivalent number of
# independent draws from the chains' autocorrelations (Geyer's initial monotone sequence);
# `inference.rhat` compares the chains' halves with each other (split R-hat, Gelman et al., 2013):
# values near 1 (below about 1.01) say the chains agree. Both take `[n_chains, n_samples, ...]`.

# %%
for name, draws, run in [("NUTS", w, info), ("fixed HMC", np.asarray(fixed_samples["w"]), fixed_info)]:
    ess, r_hat = inference.effective_sample_size(draws), inference.rhat(draws)
    print(f"{name:>9}: ESS min {ess.min():6.0f}, median {np.median(ess):6.0f} of {N_CHAINS * N_SAMPLES} "
          f"draws; R-hat max {r_hat.max():.4f}; min ESS per 1000 gradients "
          f"{1000 * ess.min() / np.sum(run.n_leapfrogs):.1f}")

# %% [markdown]
# `inference.print_summary` prints the table NumPyro users know: mean, standard deviation, median,
# a 90% interval, ESS and R-hat for every weight (first rows shown).

# %%
table = inference.print_summary({"w": w[..., :6]}, n_divergences=info.n_divergences)

# %% [markdown]
# ## Trace plots and posterior histograms
#
# Each chain a colour: well-mixed chains overlap and look like noise around a fixed level.

# %%
shown = {f"w[{i}]": i for i in range(4)} | {"intercept": w.shape[-1] - 1}
fig, axes = plt.subplots(len(shown), 2, figsize=(10, 1.7 * len(shown)), gridspec_kw={"width_ratios": [3, 1]})
for (label, i), (trace_ax, hist_ax) in zip(shown.items(), axes, strict=True):
    for chain in w[:, :, i]:
        trace_ax.plot(chain, lw=0.5, alpha=0.8)
        hist_ax.hist(chain, bins=30, histtype="step", density=True)
    hist_ax.axvline(w_map[i], color="k", lw=0.8)
    trace_ax.set_ylabel(label)
axes[-1, 0].set_xlabel("draw (after warmup)")
axes[0, 1].set_title("per chain; line: MAP", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## ArviZ
#
# `inference.to_arviz(samples, info)` builds an ArviZ `InferenceData` (the posterior plus the
# sampler statistics), so ArviZ's summaries and plots work directly. A forest plot of all 31
# weights with their 94% intervals and R-hat, and ArviZ's own ESS as a cross-check of ours:

# %%
idata = inference.to_arviz(samples, info)
az.plot_forest(idata, var_names=["w"], combined=True, r_hat=True, figsize=(7, 7))
plt.show()
ess_arviz = az.ess(idata)["w"].values
print("ESS, ours vs ArviZ: largest relative difference",
      np.max(np.abs(inference.effective_sample_size(w) / ess_arviz - 1)).round(3))

# %% [markdown]
# ## Continuing the run, and calling it again
#
# `result.state` holds the chains' last positions, the adapted step size and mass matrix, and how
# many draws were made (the position in the key stream). Passing it back continues the chains
# without warmup; with the same key, the draws are those one longer run would have made. The state
# is a plain pytree of arrays (`np.savez` can store it). And a second `sample` call with the same
# model and shapes, even on new data, reuses the compiled program: only the first call compiles.

# %%
import time

start = time.perf_counter()
more = nuts.sample(key_adapted, model, observed, n_samples=N_SAMPLES, resume=result.state)
jax.block_until_ready(more.samples)
print(f"{N_SAMPLES} more draws per chain in {time.perf_counter() - start:.2f} s "
      "(the first resume compiles its sampling-only program)")
w_all = np.concatenate([w, np.asarray(more.samples["w"])], axis=1)
print("R-hat max over both runs:", inference.rhat(w_all).max().round(4),
      " step size kept:", np.allclose(more.info.step_size, info.step_size))

start = time.perf_counter()
jax.block_until_ready(nuts.sample(jax.random.key(7), model, observed, init, n_samples=N_SAMPLES,
                                  n_warmup=N_WARMUP).samples)
print(f"a second full run (warmup included) with a new key: {time.perf_counter() - start:.2f} s, no compilation")

# %% [markdown]
# ## Posterior predictive accuracy
#
# The posterior predictive probability of a benign tumour averages the model over the draws,
# `p(y = 1 | x, data) ≈ mean_s sigmoid(x w_s)`. Each `sigmoid(x w_s)` is already there: the
# deterministic node `test_probs`, computed inside the compiled run for every kept draw, so
# nothing is recomputed by hand. We predict the more probable label and compare with the MAP
# weights alone.

# %%
probs = samples["test_probs"].mean(axis=(0, 1))     # [n_test]: the mean over chains and draws
accuracy = jnp.mean((probs > 0.5) == (y_test > 0.5))
map_accuracy = jnp.mean((x_test @ w_map > 0) == (y_test > 0.5))
print(f"test accuracy: posterior predictive {accuracy:.3f}, MAP {map_accuracy:.3f} ({len(y_test)} tumours)")

plt.hist(np.asarray(probs), bins=20)
plt.xlabel("posterior predictive p(benign | x) on the test set")
plt.ylabel("tumours")
plt.show()
