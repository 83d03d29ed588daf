# %% [markdown]
# # 1. Concepts: `BayesianNet`, nodes, `observe`, `log_joint`
#
# A model in `ppl` is a Python function that builds a **`BayesianNet`**: a record of named
# *stochastic* nodes (random variables with a distribution) and *deterministic* nodes (named values
# computed from them). Decorating the function with `@ppl.meta_bayesian_net` turns it into a
# **`MetaBayesianNet`**: a model waiting for its observations. Nothing runs until you call
# `observe(key, **observed)`.
#
# This is ZhuSuan's modelling style, on JAX: every node value is a plain `jax.Array`, so any JAX
# code (a neural network, `jax.nn.sigmoid`, ...) goes straight into the model, and whole
# inference programs compile with `jax.jit`.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import inference
import ppl

# %% [markdown]
# ## A first model
#
# Linear regression with a Gaussian prior on the weights: `w ~ N(0, 1)` for each of `d` features,
# `y | x, w ~ N(x w, 0.5)` for each of `n` data points. `group_ndims=1` says that the last batch
# axis forms one event, so its log-density is summed over that axis: `log p(w)` and `log p(y | w)`
# are then scalars, and so is the log-joint. (Without it on `y`, the log-joint would have one term
# per data point, shape `[n]`: `log_joint` adds node log-densities with right-aligned broadcasting.)

# %%
@ppl.meta_bayesian_net
def regression(x, noise_std=0.5):
    bn = ppl.BayesianNet()
    w = bn.normal("w", jnp.zeros(x.shape[1]), std=1., group_ndims=1)
    y_mean = bn.deterministic("y_mean", w @ x.T)   # w may carry leading particle axes
    bn.normal("y", y_mean, std=noise_std, group_ndims=1)
    return bn


key = jax.random.key(0)
key_x, key_model = jax.random.split(key)
x = jax.random.normal(key_x, (20, 3))
model = regression(x)          # a MetaBayesianNet: nothing has run yet
model

# %% [markdown]
# `observe` runs the builder. Nodes that are not observed are **sampled**, each with its own key
# `ppl.node_key(key, name)` (the key with a 64-bit digest of the name folded in), so adding a node
# never changes another node's samples, and two different names never share a key.

# %%
bn = model.observe(key_model)               # nothing observed: sample w and y from the prior
print(bn)
print("w:", bn["w"].value.shape, "log p(w):", bn["w"].log_prob.shape)
print("y:", bn["y"].value.shape, "log p(y|w):", bn["y"].log_prob.shape)

# %% [markdown]
# `bn[name]` is the node's record (`StochasticTensor`): its value, its numpyro distribution,
# its log-density with `group_ndims` applied, and whether it was observed. As in ZhuSuan, a record
# also stands for its value: it goes into arithmetic and any `jnp` function (`.tensor` is ZhuSuan's
# name for the value, `.dist` its distribution object with `group_ndims`).

# %%
node = bn["w"]
print(node.value, node.distribution, node.group_ndims, node.is_observed)
print(2 * bn["y_mean"][:3] + 1, jnp.mean(node), node.dist.log_prob(node.tensor))

# %% [markdown]
# ## Observing
#
# Pass observations by name. An observed node takes the given value; `log_joint()` sums the
# log-densities of all stochastic nodes with broadcasting.

# %%
y_data = bn["y"].value                       # pretend these were measured
w_guess = jnp.array([0.5, -1.0, 2.0])
conditioned = model.observe(w=w_guess, y=y_data)   # everything observed: no key needed
print("log p(w, y) =", conditioned.log_joint())
print("pieces:", conditioned.cond_log_prob(["w", "y"]))

# %% [markdown]
# The log-joint is a pure function of the values, so JAX differentiates it. Here is the gradient
# of `log p(w, y)` with respect to `w`, and a few steps of gradient ascent that find the posterior
# mode.

# %%
def log_joint(w):
    return model.observe(w=w, y=y_data).log_joint()


grad_fn = jax.jit(jax.grad(log_joint))
w = jnp.zeros(3)
for _ in range(200):
    w = w + 0.01 * grad_fn(w)
print("posterior mode:", w, " true w:", bn["w"].value)

# %% [markdown]
# ## `n_samples` and `group_ndims`
#
# `n_samples=k` draws `k` samples along a new leading axis. Shapes follow
# `[n_samples, *batch_shape, *event_shape]`, and `log_prob` drops the last `group_ndims` batch axes.

# %%
bn = ppl.BayesianNet(key=jax.random.key(1))
z = bn.normal("z", jnp.zeros([4, 2]), std=1., n_samples=10)
z_grouped = bn.normal("z_grouped", jnp.zeros([4, 2]), std=1., group_ndims=1, n_samples=10)
c = bn.categorical("c", logits=jnp.zeros([4, 5]))          # event = one index
pi = bn.dirichlet("pi", jnp.ones([4, 5]))                  # event = a vector on the simplex
for name in ["z", "z_grouped", "c", "pi"]:
    print(f"{name:10s} value {bn[name].shape!s:12s} log_prob {bn[name].log_prob.shape}")

# %% [markdown]
# ## Keys: same key, same samples
#
# Randomness is explicit. The same key gives the same samples; a different key different ones.

# %%
a = model.observe(jax.random.key(7))["w"].value
b = model.observe(jax.random.key(7))["w"].value
c = model.observe(jax.random.key(8))["w"].value
print(jnp.array_equal(a, b), jnp.array_equal(a, c))

# %% [markdown]
# ## Overriding the log-joint
#
# With minibatches, the likelihood of a batch of `m` out of `N` points is rescaled by `N / m`.
# A `log_joint_fn` (a function of the net) changes how `log_joint()` is computed: pass it to
# `meta_bayesian_net`, or take a copy of a model with `with_log_joint`. ZhuSuan's
# `model.log_joint = fn` sets the same thing. (`log_joint` is the value, `log_joint_fn` the function
# that computes it: see `docs/glossary.md`.)

# %%
minibatch_model = regression(x[:5])
n_total = x.shape[0]
scaled_model = minibatch_model.with_log_joint(lambda bn: bn["w"].log_prob + n_total / 5 * bn["y"].log_prob)
print(scaled_model.observe(w=w_guess, y=y_data[:5]).log_joint(),
      minibatch_model.observe(w=w_guess, y=y_data[:5]).log_joint())   # the original is unchanged

# %% [markdown]
# ## A variational posterior, the ELBO, and importance sampling
#
# A variational net is just another `BayesianNet`. `inference.elbo` conditions the model on the
# variational samples and gives the lower bound and its SGVB cost; `inference.is_loglikelihood`
# gives an importance-sampling estimate of `log p(y)`. The variational samples of `w` have shape
# `[n_particles, 3]`; the model was written as `w @ x.T` so that the leading particle axis flows
# through to `y_mean` (`[n_particles, 20]`), and `axis=0` averages over it. The objectives check
# that `axis` is the particle axis (the axis `n_samples` drew): `axis=1` here would average over
# data points, and is an error. Like ZhuSuan's, an objective stands for its value: `jnp.mean(lb)`
# is the mean lower bound, `lb.sgvb()` the cost to minimise.

# %%
@ppl.meta_bayesian_net
def mean_field(mean, logstd, n_particles):
    bn = ppl.BayesianNet()
    bn.normal("w", mean, logstd=logstd, group_ndims=1, n_samples=n_particles)
    return bn


def loss(params, key):
    q = mean_field(*params, n_particles=8).observe(key)
    return -jnp.mean(inference.elbo(model, {"y": y_data}, variational=q, axis=0))


import optax  # noqa: E402

optimizer = optax.adam(0.05)
params = (jnp.zeros(3), jnp.zeros(3))
opt_state = optimizer.init(params)


@jax.jit
def train_step(params, opt_state, key):
    value, grads = jax.value_and_grad(loss)(params, key)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value


history = []
for step_key in jax.random.split(jax.random.key(2), 500):
    params, opt_state, value = train_step(params, opt_state, step_key)
    history.append(-value)

q = mean_field(*params, n_particles=1000).observe(jax.random.key(3))
print("ELBO:", history[-1], " IS log p(y):", inference.is_loglikelihood(model, {"y": y_data}, variational=q, axis=0))
plt.plot(history)
plt.xlabel("step")
plt.ylabel("ELBO (nats)")
plt.show()

# %% [markdown]
# ## The errors you will meet
#
# Mistakes are caught when the model is built, with the node's name and the shapes involved.

# %%
def show_error(fn):
    try:
        fn()
    except (ValueError, TypeError, KeyError) as error:
        print(f"{type(error).__name__}: {error}")


show_error(lambda: model.observe(y=y_data))                      # w must be sampled, no key
show_error(lambda: model.observe(key, t=1.0))                    # unknown node name
show_error(lambda: model.observe(key, y=jnp.zeros(7)))           # shape does not broadcast
show_error(lambda: model.observe(key, y_mean=jnp.zeros(20)))     # deterministic nodes are not observable
show_error(lambda: ppl.BayesianNet(key=key).normal("z", 0., std=1., logstd=0.))  # std and logstd
show_error(lambda: ppl.BayesianNet(observed={"c": jnp.array(1.5)}).categorical("c", jnp.zeros(3)))
show_error(lambda: model.observe(key, y=y_data.at[3].set(jnp.nan)))   # NaN is never missing data
show_error(lambda: inference.elbo(model, {"y": y_data}, variational=q))   # 1000 particles, no axis

# %% [markdown]
# Observed values outside a node's support (a Bernoulli observed at 0.5, a gamma at -1) give a
# warning naming the node and how many values; `ppl.set_out_of_support("error")` (or
# `with ppl.out_of_support("error"):`) makes it an error, and a model built with
# `ppl.meta_bayesian_net(out_of_support="ignore")` accepts them on purpose.

# %%
import warnings  # noqa: E402

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ppl.BayesianNet(observed={"pixel": jnp.array([0., 0.5, 1.])}).bernoulli("pixel", logits=jnp.zeros(3))
print(caught[0].category.__name__, str(caught[0].message)[:90], "...")
