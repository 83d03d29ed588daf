"""Gradient variance of the score-function estimators on the sigmoid belief net (200-200-200).

At fixed parameters (after one short VIMCO epoch on the packaged MNIST digits, so q is not
trivial), for one fixed batch of 24 test digits and K = 10 samples per digit, the variance of the
variational net's gradient over `--draws` independent draws, summed over all q parameters:

* REINFORCE on the K-sample-averaged ELBO: no baseline / moving average (state run to
  convergence first) / learned input-dependent baseline (a linear function of x trained on its
  regression cost, plus the moving average, as in NVIL);
* VIMCO on the K-sample bound;
* RWS: `klpq(...).importance()` (a different objective, shown for scale).

Usage: `python -m benchmarks.vi_variance` (writes `benchmarks/results/vi_variance.json`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from inference.elbo import elbo
from inference.estimators import reinforce_init
from inference.iw_objective import iw_objective
from inference.klpq import klpq
from models.data import mnist
from models.vae import sbn

__all__ = ["main"]

K, BATCH = 10, 24


def _elbo(params, key, x):
    q = sbn.build_q_net(params, x, n_particles=K).observe(key)
    return elbo(sbn.build_gen(params, x.shape[0], n_particles=K), {"x": x}, variational=q, axis=0)


def _q_grad_fn(estimator):
    def q_cost(params, key, x, state, baseline):
        if estimator == "vimco":
            q = sbn.build_q_net(params, x, n_particles=K).observe(key)
            return jnp.mean(iw_objective(sbn.build_gen(params, x.shape[0], n_particles=K), {"x": x},
                                         variational=q, axis=0).vimco())
        if estimator == "rws":
            q = sbn.build_q_net(params, x, n_particles=K).observe(key)
            return jnp.mean(klpq(sbn.build_gen(params, x.shape[0], n_particles=K), {"x": x}, variational=q,
                                 axis=0).importance())
        reduce = estimator != "reinforce_none"
        return jnp.mean(_elbo(params, key, x).reinforce(state, variance_reduction=reduce,
                                                        baseline=baseline if reduce else None).cost)
    return lambda *args: jax.grad(q_cost)(*args)["q"]


def _fit_baselines(params, key, x):
    """Runs the moving average to convergence and fits a linear baseline b(x) = x . v + c."""
    optimizer = optax.adam(1e-2)
    linear = {"v": jnp.zeros(x.shape[1]), "c": jnp.zeros(())}

    def step(carry, key):
        state, linear, opt_state = carry

        def cost(linear):
            result = _elbo(params, key, x).reinforce(state, baseline=x @ linear["v"] + linear["c"])
            return jnp.mean(result.baseline_cost), result.state
        grads, new_state = jax.grad(cost, has_aux=True)(linear)
        updates, opt_state = optimizer.update(grads, opt_state, linear)
        return (new_state, optax.apply_updates(linear, updates), opt_state), None

    def moving_only(state, key):
        return _elbo(params, key, x).reinforce(state).state, None

    keys = jax.random.split(key, 2)
    state, _ = jax.lax.scan(moving_only, reinforce_init(), jax.random.split(keys[0], 100))
    (learned_state, linear, _), _ = jax.lax.scan(step, (reinforce_init(), linear, optimizer.init(linear)),
                                                 jax.random.split(keys[1], 1000))
    return state, learned_state, x @ linear["v"] + linear["c"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/vi_variance.json")
    args = parser.parse_args(argv)
    data = mnist.load_mnist_5k()
    key_fit, key_x, key_base, key_draws = jax.random.split(jax.random.key(0), 4)
    params = sbn.fit(key_fit, data.x_train, method="vimco", n_particles=K, n_epochs=1, is_binarized=False,
                     progress_bar=False).params
    x = jax.random.bernoulli(key_x, jnp.asarray(data.x_test[:BATCH])).astype(jnp.float32)
    moving_state, learned_state, baseline = jax.jit(_fit_baselines)(params, key_base, x)
    keys = jax.random.split(key_draws, args.draws)
    settings = {
        "reinforce_none": ("reinforce_none", reinforce_init(), None),
        "reinforce_moving_average": ("reinforce", moving_state, None),
        "reinforce_learned_baseline": ("reinforce", learned_state, baseline),
        "vimco": ("vimco", reinforce_init(), None),
        "rws": ("rws", reinforce_init(), None),
    }
    rows = {}
    for name, (estimator, state, base) in settings.items():
        grad_fn = _q_grad_fn(estimator)
        grads = jax.jit(jax.vmap(grad_fn, in_axes=(None, 0, None, None, None)))(params, keys, x, state, base)
        leaves = [np.asarray(g, np.float64).reshape(args.draws, -1) for g in jax.tree.leaves(grads)]
        flat = np.concatenate(leaves, axis=1)
        rows[name] = {"total_variance": float(np.sum(np.var(flat, axis=0, ddof=1))),
                      "squared_norm_of_mean": float(np.sum(np.mean(flat, axis=0) ** 2))}
        print(name, json.dumps(rows[name]), flush=True)
    none = rows["reinforce_none"]["total_variance"]
    for row in rows.values():
        row["variance_relative_to_reinforce_none"] = row["total_variance"] / none
    Path(args.out).write_text(json.dumps({"k": K, "batch": BATCH, "draws": args.draws, "rows": rows},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
