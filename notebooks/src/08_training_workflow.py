# %% [markdown]
# # 8. The training workflow: `fit`, checkpoints and resume, predictions, model checking
#
# Every variational model trains the same way: write a **loss function** (any objective's surrogate
# cost) and hand it to `inference.fit`, which batches the data, runs each epoch as one compiled
# `lax.scan`, skips steps whose cost or gradient is not finite, and can save **checkpoints** and
# **resume** from them. Then `inference.predictive` draws predictions from the trained posterior (or
# from MCMC samples), and `inference.to_arviz` hands everything to ArviZ for **LOO** and posterior
# predictive checks.
#
# The data are scikit-learn's diabetes set (442 patients, 10 standardised baseline measurements;
# the target is a disease-progression score one year later), packaged with scikit-learn. We hold out
# 100 patients. The notebook runs in well under a minute on a laptop CPU; `SCALE` trains longer.

# %%
SCALE = 1
N_EPOCHS = 40 * SCALE
BATCH_SIZE = 32
N_PARTICLES = 8

import tempfile

import arviz as az
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.datasets import load_diabetes

import inference
import ppl

x_all, y_all = load_diabetes(return_X_y=True)
order = np.random.default_rng(0).permutation(len(y_all))
train, test = order[100:], order[:100]
x_mean, x_std = x_all[train].mean(0), x_all[train].std(0)
y_mean, y_std = y_all[train].mean(), y_all[train].std()
x_train, x_test = [jnp.asarray((x_all[i] - x_mean) / x_std, jnp.float32) for i in (train, test)]
y_train, y_test = [jnp.asarray((y_all[i] - y_mean) / y_std, jnp.float32) for i in (train, test)]
N_TRAIN, N_FEATURES = x_train.shape
print("train", x_train.shape, "test", x_test.shape)

# %% [markdown]
# ## The model and the variational posterior
#
# Bayesian linear regression with an unknown noise level: `w ~ N(0, I)`, `b ~ N(0, 1)`,
# `log_noise ~ N(0, 1)` and `y_n ~ N(x_n w + b, exp(log_noise)^2)`. The variational net `q` is a
# diagonal normal over the three latents; its means and log-standard deviations are the parameters
# `fit` trains. Both builders take `n_particles`, the number of samples the ELBO averages over.

# %%
@ppl.meta_bayesian_net
def regression(x, n_particles=None):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=1.0, group_ndims=1, n_samples=n_particles)
    b = bn.normal("b", jnp.zeros(()), std=1.0, n_samples=n_particles)
    log_noise = bn.normal("log_noise", jnp.zeros(()), std=1.0, n_samples=n_particles)
    mean = jnp.einsum("...d,nd->...n", w, x) + b[..., None]
    bn.normal("y", mean, std=jnp.exp(log_noise)[..., None], group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def q_net(params, n_particles=None):
    bn = ppl.BayesianNet()
    for name in ("w", "b", "log_noise"):
        loc, log_std = params[name]
        bn.normal(name, loc, logstd=log_std, group_ndims=loc.ndim, n_samples=n_particles)
    return bn


params = {"w": (jnp.zeros(N_FEATURES), jnp.full(N_FEATURES, -2.0)),
          "b": (jnp.zeros(()), jnp.full((), -2.0)), "log_noise": (jnp.zeros(()), jnp.full((), -2.0))}

# %% [markdown]
# ## The loss function
#
# `fit` calls `loss_fn(params, key, batch, state)` once per step with a fresh `key` and a minibatch,
# and expects `(cost, (state, metrics))`: a scalar to minimise, the loss's own state (unused here;
# a REINFORCE baseline would live there) and a dict of numbers to record. The minibatch likelihood
# is scaled by `N / batch size` so that the ELBO estimates the full-data one.

# %%
def loss_fn(params, key, batch, state):
    x, y = batch
    model = regression(x, N_PARTICLES)
    model.log_joint = inference.scaled_log_joint(N_TRAIN / x.shape[0], ["y"])
    q = q_net(params, N_PARTICLES).observe(key)
    lower_bound = inference.elbo(model, {"y": y}, variational=q, axis=0)
    return jnp.mean(lower_bound.sgvb()), (state, {"elbo": jnp.mean(lower_bound.value)})


optimizer = optax.adam(0.05)
result = inference.fit(jax.random.key(0), loss_fn, params, optimizer, (x_train, y_train),
                       n_epochs=N_EPOCHS, batch_size=BATCH_SIZE)
print({name: values[-1].round(3) for name, values in result.history.items()})

plt.figure(figsize=(6, 3))
plt.plot(np.arange(1, N_EPOCHS + 1), result.history["elbo"])
plt.xlabel("epoch")
plt.ylabel("mean minibatch ELBO (nats)")
plt.tight_layout()
plt.show()

# %% [markdown]
# `result` is a `TrainResult(params, opt_state, state, history, key)`. `history` holds one value per
# epoch: the mean cost and metrics over the epoch's steps, `n_skipped` (steps whose cost or gradient
# was not finite: they are skipped, counted and warned about, never applied) and `seconds`.
#
# ## Checkpoints and resume
#
# With `checkpoint_dir`, `fit` saves the parameters, optimiser state, loss state, key, epoch and
# history every `checkpoint_every` epochs (atomically, with orbax-checkpoint: a checkpoint appears
# only when complete; saves run in the background). `resume=True` continues from the newest one, and
# starts afresh when there is none, so one command line serves the first run and every restart.
# Below, a callback interrupts
# the run after epoch 15, as a pre-empted job or a Ctrl-C would; the resumed run then ends with
# exactly the parameters of the uninterrupted run above, because epoch e always draws its batches
# and noise with `fold_in(key, e)`.

# %%
checkpoint_dir = tempfile.mkdtemp()


def interrupt_after_15(epoch, params, state, record):
    if epoch == 15:
        raise KeyboardInterrupt


try:
    inference.fit(jax.random.key(0), loss_fn, params, optimizer, (x_train, y_train), n_epochs=N_EPOCHS,
                  batch_size=BATCH_SIZE, checkpoint_dir=checkpoint_dir, checkpoint_every=1,
                  callback_fn=interrupt_after_15, progress_bar=False)
except KeyboardInterrupt:
    print("interrupted; last checkpoint:", inference.load_checkpoint_metadata(checkpoint_dir)["epoch"])

resumed = inference.fit(jax.random.key(0), loss_fn, params, optimizer, (x_train, y_train), n_epochs=N_EPOCHS,
                        batch_size=BATCH_SIZE, checkpoint_dir=checkpoint_dir, checkpoint_every=1, resume=True,
                        progress_bar=False)
same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), resumed.params, result.params)
print("resumed run equals the uninterrupted one:", all(jax.tree.leaves(same)))

# %% [markdown]
# `inference.save_checkpoint(path, pytree)` and `inference.load_checkpoint(path, like=...)` do the same
# for any pytree of arrays: parameters, an optax state, or an MCMC state to continue sampling later.
#
# ## Predictions from the variational posterior
#
# `inference.predictive(key, model, observed, variational=q, n_samples=...)` samples `q`, then every
# unobserved node of the model given those latents, vectorised over the draws (and in chunks of
# `chunk_size` draws when memory is tight). Built for the test inputs, the model's `y` node gives
# the posterior predictive distribution of the held-out targets.

# %%
draws = inference.predictive(jax.random.key(1), regression(x_test), variational=q_net(result.params),
                             n_samples=2000, return_nodes="y")
y_draws = np.asarray(draws["y"])                    # [2000, 100]
low, high = np.percentile(y_draws, [5, 95], axis=0)
rmse = np.sqrt(np.mean((y_draws.mean(0) - np.asarray(y_test)) ** 2)) * y_std
coverage = np.mean((np.asarray(y_test) >= low) & (np.asarray(y_test) <= high))
print(f"test RMSE {rmse:.1f} (target sd {y_std:.1f}); 90% predictive interval covers {coverage:.0%}")

# %% [markdown]
# ## MCMC, ArviZ and leave-one-out cross-validation
#
# The same model, sampled by HMC, gives `[n_chains, n_samples]` draws; `predictive` accepts them
# directly. `to_arviz` fills the posterior, the sampler statistics, the **log-likelihood of every
# observation** (computed from the model at each draw), the observed data and posterior predictive
# draws, so `az.loo` runs in one line. The Pareto k values say whether the importance-sampling LOO
# estimate can be trusted for every patient.

# %%
model, observed = regression(x_train), {"y": y_train}
hmc = inference.HMC(step_size=0.05, n_leapfrogs=10, adapt_step_size=True, adapt_mass=True)
samples, info = hmc.sample(jax.random.key(2), model, observed, n_samples=300, n_warmup=300, n_chains=4)
idata = inference.to_arviz(samples, info, model=model, observed=observed, key=jax.random.key(3))
print(idata)
loo = az.loo(idata)
print(loo)

test_draws = inference.predictive(jax.random.key(4), regression(x_test), samples=samples, return_nodes="y")
print("HMC predictive draws:", test_draws["y"].shape, " test RMSE",
      (np.sqrt(np.mean((np.asarray(test_draws["y"]).mean((0, 1)) - np.asarray(y_test)) ** 2)) * y_std).round(1))

# %%
az.plot_ppc(idata, num_pp_samples=100, figsize=(6, 3))
plt.show()
inference.print_summary({name: samples[name] for name in ("b", "log_noise")}, n_divergences=info.n_divergences)
