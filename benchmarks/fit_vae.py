"""Speed benchmark: the VAE trained through `inference.fit` vs the hand-written JAX epoch loop.

All contenders train ZhuSuan's VAE (40-dim z, 500-500 ReLU MLPs, Bernoulli likelihood, one-sample
SGVB, Adam 1e-3, batch 128, dynamic binarisation, one jitted `lax.scan` per epoch) from the same
parameters on the same digits:

- `handwritten loop`: `benchmarks.vae_handwritten.make_epoch` called once per epoch, the epoch's
  mean loss fetched for the log (what the zoo's loops did before `inference.fit`);
- `fit, hand-written loss`: `inference.fit` with the same hand-written loss, so the difference is
  the driver alone (non-finite check, running metrics, per-epoch bookkeeping);
- `fit, DSL loss`: `inference.fit` with `models.vae.model.loss_fn` (the DSL and `inference.elbo(...).sgvb()`);
- `fit, DSL loss, checkpoint every epoch`: the same with `checkpoint_dir=..., checkpoint_every=1`.

Rounds are interleaved (each round runs `--epochs-per-round` epochs of every contender, in a
rotating order) so that load from other processes hits all alike; every `fit` round is a complete
`fit` call (argument checks, abstract trace of the loss, data transfer, host loop), so its per-call
costs are included. The table reports the median seconds per epoch, the ratio to the hand-written
loop (target <= 1.03 for fit), and the first call (trace + compile + one epoch). A second table
times one checkpoint save of the VAE's parameters and Adam state (about 4 million floats): the part
that blocks training (the copy to host before orbax writes in the background) and the whole write,
against the epoch time (target < 2% of an epoch).

Run: `.venv/bin/python -m benchmarks.fit_vae [--dataset mnist_5k|mnist] [--rounds 6]`; a check at
tiny size: `--n-train 512 --n-hidden 50 --rounds 2 --epochs-per-round 2`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
from benchmarks import vae_handwritten as hw
from inference.checkpoint import TrainCheckpoints
from models.data import mnist
from models.vae import model as vae

__all__ = ["main"]

BATCH = 128


def hw_loss(params, key, x, state):
    """The hand-written VAE cost on a batch of intensities, binarised with the step's key."""
    key_binarize, key_loss = jax.random.split(key)
    x = jax.random.bernoulli(key_binarize, x).astype(x.dtype)
    return hw.loss_fn(params, key_loss, x), (state, {})


def dsl_loss(params, key, x, state):
    """`models.vae.model.loss_fn` (the DSL) on a batch binarised with the step's key."""
    key_binarize, key_loss = jax.random.split(key)
    x = jax.random.bernoulli(key_binarize, x).astype(x.dtype)
    return vae.loss_fn(params, key_loss, x), (state, {})


def _contenders(x_train, optimizer):
    epoch = hw.make_epoch(hw.make_train_step(optimizer), BATCH)

    def handwritten(carry, key, n_epochs):
        params, opt_state = carry
        for e in range(n_epochs):
            params, opt_state, losses = epoch(params, opt_state, jax.random.fold_in(key, e), x_train)
            float(np.mean(np.asarray(losses)))                       # the epoch's loss, for the log
        return params, opt_state

    def with_fit(loss_fn, is_checkpointed=False):
        def run(carry, key, n_epochs):
            params, opt_state = carry
            with tempfile.TemporaryDirectory() as directory:
                result = inference.fit(key, loss_fn, params, optimizer, x_train, n_epochs=n_epochs,
                                       batch_size=BATCH, opt_state=opt_state, progress_bar=False,
                                       checkpoint_dir=directory if is_checkpointed else None)
            return result.params, result.opt_state
        return run

    return {"handwritten loop": handwritten, "fit, hand-written loss": with_fit(hw_loss),
            "fit, DSL loss": with_fit(dsl_loss),
            "fit, DSL loss, checkpoint every epoch": with_fit(dsl_loss, True)}


def _time_rounds(contenders, carry, args):
    carries = {name: carry for name in contenders}
    first_call, per_epoch = {}, {name: [] for name in contenders}
    for name, run in contenders.items():
        start = time.perf_counter()
        carries[name] = jax.block_until_ready(run(carries[name], jax.random.key(1), 1))
        first_call[name] = time.perf_counter() - start
    names = list(contenders)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            carries[name] = jax.block_until_ready(contenders[name](carries[name], jax.random.key(10 + r),
                                                                   args.epochs_per_round))
            per_epoch[name].append((time.perf_counter() - start) / args.epochs_per_round)
    return first_call, per_epoch


def _checkpoint_costs(params, opt_state, repeats: int = 5) -> dict:
    tree = {"params": params, "opt_state": opt_state, "state": None, "key": jax.random.key(0)}
    blocking, total, sync = [], [], []
    with tempfile.TemporaryDirectory() as directory:
        checkpoints = TrainCheckpoints(os.path.join(directory, "async"), max_to_keep=2)
        for epoch in range(1, repeats + 1):
            start = time.perf_counter()
            checkpoints.save(epoch, tree, {"epoch": epoch, "is_stopped": False, "history": []})
            blocking.append(time.perf_counter() - start)
            checkpoints._manager.wait_until_finished()
            total.append(time.perf_counter() - start)
        checkpoints.close()
        for i in range(repeats):
            start = time.perf_counter()
            inference.save_checkpoint(os.path.join(directory, f"sync{i}"), tree)
            sync.append(time.perf_counter() - start)
    n_floats = sum(np.size(x) for x in jax.tree.leaves((params, opt_state)))
    return {"blocking": float(np.median(blocking)), "total": float(np.median(total)),
            "sync": float(np.median(sync)), "n_floats": int(n_floats)}


def _report(first_call, per_epoch, costs, args, n_train) -> str:
    base = np.median(per_epoch["handwritten loop"])
    lines = ["| contender | median s/epoch | IQR s/epoch | ratio vs hand-written loop | first call s |",
             "|---|---|---|---|---|"]
    for name, values in per_epoch.items():
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        lines.append(f"| {name} | {q50:.3f} | {q25:.3f}-{q75:.3f} | {q50 / base:.3f} "
                     f"| {first_call[name]:.1f} |")
    epoch = np.median(per_epoch["fit, DSL loss"])
    checkpointed = np.median(per_epoch["fit, DSL loss, checkpoint every epoch"])
    lines += ["", f"Checkpoint of the parameters and Adam state ({costs['n_floats'] / 1e6:.2f} M floats), "
              "median of 5 saves:", "", "| | seconds | % of a `fit, DSL loss` epoch |", "|---|---|---|",
              f"| blocking part of an asynchronous save (fit) | {costs['blocking']:.3f} | "
              f"{100 * costs['blocking'] / epoch:.2f}% |",
              f"| whole asynchronous save (written in the background) | {costs['total']:.3f} | "
              f"{100 * costs['total'] / epoch:.2f}% |",
              f"| `save_checkpoint` (synchronous) | {costs['sync']:.3f} | "
              f"{100 * costs['sync'] / epoch:.2f}% |",
              f"| fit with checkpoint_every=1 minus without, per epoch | {checkpointed - epoch:.3f} | "
              f"{100 * (checkpointed - epoch) / epoch:.2f}% |"]
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc)
    header = (f"Measured {now:%Y-%m-%d %H:%M} UTC on {platform.machine()} "
              f"({os.cpu_count()} CPU cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}), jax "
              f"{jax.__version__}, backend {jax.default_backend()}; {args.dataset}, {n_train} training "
              f"digits ({n_train // BATCH} steps per epoch), {args.rounds} rounds x {args.epochs_per_round} "
              "epochs.")
    return header + "\n\n" + "\n".join(lines)


def main(argv=None) -> int:
    """Times the contenders and prints the markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("mnist_5k", "mnist"), default="mnist_5k")
    parser.add_argument("--data-dir", default=os.environ.get("PPL_DATA_DIR"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs-per-round", type=int, default=10,
                        help="epochs per fit call (a call waits for its last checkpoint to be written)")
    parser.add_argument("--n-train", type=int, default=None, help="use the first N training digits")
    parser.add_argument("--n-hidden", type=int, default=500)
    args = parser.parse_args(argv)
    data = mnist.load_dataset(args.dataset, args.data_dir)
    x_train = jnp.asarray(data.x_train[: args.n_train], jnp.float32)
    params = vae.init_params(jax.random.key(0), n_hidden=args.n_hidden)
    optimizer = optax.adam(1e-3)
    carry = (params, optimizer.init(params))
    first_call, per_epoch = _time_rounds(_contenders(x_train, optimizer), carry, args)
    costs = _checkpoint_costs(*carry)
    print(_report(first_call, per_epoch, costs, args, x_train.shape[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
