"""Step time: M2's unlabelled bound with the label enumerated by the DSL vs tiled by hand (ZhuSuan's way).

Kingma et al.'s M2 (p(y) uniform over 10 classes, p(z) normal, p(x | y, z) Bernoulli from an MLP of
[z, y]; q(y | x) an MLP classifier, q(z | x, y) a normal from an MLP of [x, y]), on a batch of 100
binary 784-pixel images, `--k` samples of z per label:

* library: `inference.elbo(model, {"x": x}, variational=q, axis=0, enumerate="y")`, builders written
  as for labelled data;
* hand-written: ZhuSuan's `vae_ssl.py` in plain JAX: each image repeated once per label, the bound
  of every (image, label) pair, reshaped to `[n, 10]` and summed with the weights q(y | x).

Each repetition runs `--steps` training steps (`value_and_grad` + Adam) in one jitted `lax.scan`,
compiled once; repetitions are interleaved and the medians of wall and CPU time per step compared
(target: within 1.10x). XLA's cost analysis of both programs is recorded as a load-independent check.

Usage: `python -m benchmarks.enumeration_step [--reps 10 --steps 5]` (writes
`benchmarks/results/enumeration_step.json`); `--hidden 50 --reps 2 --steps 2` is a quick check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

import inference
import ppl
from benchmarks.vi_step import _make_run, _time_pair, _xla_cost
from models import nn

__all__ = ["main"]

N_CLASSES = 10
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def init_params(key, hidden, z_dim, x_dim=784):
    key_classifier, key_encoder, key_decoder = jax.random.split(key, 3)
    return {"classifier": nn.init_mlp(key_classifier, [x_dim, hidden, hidden, N_CLASSES]),
            "encoder": nn.init_mlp(key_encoder, [x_dim + N_CLASSES, hidden, hidden, 2 * z_dim]),
            "decoder": nn.init_mlp(key_decoder, [z_dim + N_CLASSES, hidden, hidden, x_dim])}


@ppl.meta_bayesian_net
def m2_model(params, n, n_particles):
    bn = ppl.BayesianNet()
    z_dim = params["decoder"][0]["w"].shape[0] - N_CLASSES
    y = bn.onehot_categorical("y", logits=jnp.zeros([n, N_CLASSES]), n_samples=n_particles)
    z = bn.normal("z", jnp.zeros([n, z_dim]), std=1.0, group_ndims=1, n_samples=n_particles)
    y = jnp.broadcast_to(y, z.shape[:-1] + (N_CLASSES,)).astype(z.dtype)
    bn.bernoulli("x", logits=nn.mlp(params["decoder"], jnp.concatenate([z, y], -1)), group_ndims=1)
    return bn


@ppl.meta_bayesian_net
def m2_q(params, x, n_particles):
    bn = ppl.BayesianNet()
    y = bn.onehot_categorical("y", logits=nn.mlp(params["classifier"], x))
    h = nn.mlp(params["encoder"], jnp.concatenate([x, y.astype(x.dtype)], -1))
    z_dim = h.shape[-1] // 2
    bn.normal("z", h[..., :z_dim], logstd=h[..., z_dim:], group_ndims=1, n_samples=n_particles)
    return bn


def library_cost(params, key, x, k):
    """-(M2's unlabelled bound), y enumerated by the DSL."""
    q = m2_q(params, x, k).observe(key)
    bound = inference.elbo(m2_model(params, x.shape[0], k), {"x": x}, variational=q, axis=0, enumerate="y")
    return -jnp.mean(bound.value)


def handwritten_cost(params, key, x, k):
    """The same bound as ZhuSuan's vae_ssl.py computes it: images tiled over the labels."""
    n = x.shape[0]
    y = jnp.tile(jnp.eye(N_CLASSES), (n, 1))                        # [n * 10, 10]
    x_tiled = jnp.repeat(x, N_CLASSES, axis=0)                       # [n * 10, 784]
    h = nn.mlp(params["encoder"], jnp.concatenate([x_tiled, y], -1))
    z_dim = h.shape[-1] // 2
    mean, logstd = h[:, :z_dim], h[:, z_dim:]
    eps = jax.random.normal(key, (k, *mean.shape))
    z = mean + jnp.exp(logstd) * eps
    log_q_z = jnp.sum(-0.5 * eps**2 - logstd - HALF_LOG_2PI, -1)
    log_p_z = jnp.sum(-0.5 * z**2 - HALF_LOG_2PI, -1)
    logits = nn.mlp(params["decoder"], jnp.concatenate([z, jnp.broadcast_to(y, (k, *y.shape))], -1))
    log_p_x = jnp.sum(x_tiled * logits - jax.nn.softplus(logits), -1)
    bound_z = jnp.mean(log_p_x + log_p_z - math.log(N_CLASSES) - log_q_z, 0).reshape(n, N_CLASSES)
    log_q_y = jax.nn.log_softmax(nn.mlp(params["classifier"], x), -1)
    return -jnp.mean(jnp.sum(jnp.exp(log_q_y) * (bound_z - log_q_y), 1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="training steps per repetition (one lax.scan)")
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--k", type=int, default=1, help="samples of z per (image, label)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/enumeration_step.json")   # overwritten
    args = parser.parse_args(argv)
    params = init_params(jax.random.key(0), args.hidden, args.z_dim)
    x = jax.random.bernoulli(jax.random.key(2), 0.3, (args.batch, 784)).astype(jnp.float32)
    key = jax.random.key(3)
    values = [float(jax.jit(cost, static_argnums=3)(params, key, x, args.k))
              for cost in (library_cost, handwritten_cost)]
    optimizer = optax.adam(1e-3)
    runs = [_make_run(cost, optimizer, args.k, args.steps) for cost in (library_cost, handwritten_cost)]
    opt_state = optimizer.init(params)
    labels = ("library", "handwritten")
    cost = {label: _xla_cost(run, params, opt_state, x) for label, run in zip(labels, runs, strict=True)}
    (w_lib, w_hand), (c_lib, c_hand), ratio, ratio_iqr = _time_pair(runs, params, x, args.reps, args.steps)
    result = {"library_ms": 1e3 * w_lib, "handwritten_ms": 1e3 * w_hand, "ratio": w_lib / w_hand,
              "median_per_rep_ratio": ratio, "per_rep_ratio_iqr": ratio_iqr, "library_cpu_ms": 1e3 * c_lib,
              "handwritten_cpu_ms": 1e3 * c_hand, "cpu_ratio": c_lib / c_hand, "xla_cost": cost,
              "costs_same_key": values, "settings": vars(args), "device": str(jax.devices()[0]),
              "load_average": os.getloadavg()[0]}
    print(json.dumps(result, indent=2), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
