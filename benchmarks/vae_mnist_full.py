"""Quality benchmark: the DSL VAE vs the hand-written JAX VAE, trained on the full MNIST.

Both start from the same parameters (`models.vae.model.init_params`), see the same dynamically binarised
batches in the same order with the same noise keys (Adam 1e-3, batch 128, one jitted `lax.scan` per
epoch), and are evaluated on the 10000 test digits (binarised once, the same for both) with 1000
importance samples per digit: the test ELBO (mean log weight) and the importance-sampled
log-likelihood (log-mean-exp of the weights, Burda et al. 2015). The epochs of the two models are
interleaved so both see the same load on a shared CPU. With `--deadline HH:MM` (UTC) the run stops
adding epochs (the same number for both) when the measured epoch and evaluation times say the next
one would not finish in time; the JSON records how many epochs ran.

Run: `.venv/bin/python -m benchmarks.vae_mnist_full --epochs 50 --deadline 23:05`
(data from `--data-dir`, `$PPL_DATA_DIR`, or `<repo>/../shared/data`). Writes
`benchmarks/results/vae_mnist_full.json` (updated after every epoch) and prints a markdown table.

References:
  Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
  Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
  <https://arxiv.org/abs/1509.00519>`_, 2015.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import inference
from benchmarks import vae_handwritten as hw
from models.data import mnist
from models.vae import model as vae

__all__ = ["dsl_evaluate_per_digit", "main"]

RESULTS = Path(__file__).resolve().parent / "results"


@functools.partial(jax.jit, static_argnames="n_importance")
def _dsl_chunks(params, key, chunks, n_importance):
    x_dim, z_dim = params["decoder"][-1]["w"].shape[1], params["decoder"][0]["w"].shape[0]

    def chunk(inputs):
        key, x = inputs
        model = vae.build_gen(params, x.shape[0], x_dim, z_dim, n_importance)
        q = vae.build_q_net(params, x, z_dim, n_importance).observe(key)
        lower_bound = inference.elbo(model, {"x": x}, variational=q, axis=0).value
        return lower_bound, inference.is_loglikelihood(model, {"x": x}, proposal=q, axis=0)

    return jax.lax.map(chunk, (jax.random.split(key, chunks.shape[0]), chunks))


def dsl_evaluate_per_digit(params: dict, key: jax.Array, x: jax.Array, n_importance: int = 1000,
                           batch_size: int = 25) -> tuple[jax.Array, jax.Array]:
    """`models.vae.model.evaluate`, but returning the per-digit ELBO and log-likelihood, each `[n]` (nats).

    Same chunking and keys as `models.vae.model.evaluate` (and `vae_handwritten.evaluate`).
    """
    n, x_dim = x.shape
    n_chunks = math.ceil(n / batch_size)
    padded = jnp.concatenate([x, jnp.zeros((n_chunks * batch_size - n, x_dim), x.dtype)])
    elbo, log_likelihood = _dsl_chunks(params, key, padded.reshape(n_chunks, batch_size, x_dim), n_importance)
    return elbo.reshape(-1)[:n], log_likelihood.reshape(-1)[:n]


def _hw_evaluate_per_digit(params, key, x, n_importance=1000, batch_size=25):
    scores = hw.evaluate(params, key, x, n_importance, batch_size, per_digit=True)
    return scores["elbo_per_digit"], scores["log_likelihood_per_digit"]


def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("PPL_DATA_DIR"):
        return Path(os.environ["PPL_DATA_DIR"])
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _deadline(text: str | None) -> float:
    """Seconds since the epoch of today's HH:MM UTC (inf when not given)."""
    if not text:
        return math.inf
    hours, minutes = (int(part) for part in text.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(hour=hours, minute=minutes, second=0, microsecond=0).timestamp()


def _summary(elbo, log_likelihood) -> dict:
    elbo, log_likelihood = np.asarray(elbo, np.float64), np.asarray(log_likelihood, np.float64)
    n = len(elbo)
    return {"test_elbo": float(elbo.mean()), "test_elbo_stderr": float(elbo.std(ddof=1) / math.sqrt(n)),
            "test_log_likelihood": float(log_likelihood.mean()),
            "test_log_likelihood_stderr": float(log_likelihood.std(ddof=1) / math.sqrt(n))}


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def _train(args, record, path, params0, x_train, x_test, key_train, key_eval):
    optimizer = optax.adam(args.learning_rate)
    contenders = {"dsl": hw.make_epoch(vae.make_train_step(optimizer), args.batch_size),   # same batches
                  "handwritten": hw.make_epoch(hw.make_train_step(optimizer), args.batch_size)}
    evaluators = {"dsl": dsl_evaluate_per_digit, "handwritten": _hw_evaluate_per_digit}
    # Time the evaluation on a slice (after compiling) to budget the epochs against the deadline.
    eval_seconds = 0.0
    for evaluate in evaluators.values():
        jax.block_until_ready(evaluate(params0, key_eval, x_test[:25], args.n_importance))
        start = time.perf_counter()
        jax.block_until_ready(evaluate(params0, key_eval, x_test[:250], args.n_importance))
        eval_seconds += (time.perf_counter() - start) * len(x_test) / 250
    record["estimated_eval_seconds"] = eval_seconds
    deadline = _deadline(args.deadline)
    state = {name: (params0, optimizer.init(params0)) for name in contenders}
    seconds = dict.fromkeys(contenders, 0.0)
    train_elbo = {name: [] for name in contenders}
    epoch_seconds = {name: [] for name in contenders}
    for epoch in range(args.epochs):
        key_epoch = jax.random.fold_in(key_train, epoch)
        for name, run_epoch in contenders.items():
            start = time.perf_counter()
            params, opt_state, losses = run_epoch(*state[name], key_epoch, x_train)
            train_elbo[name].append(-float(jnp.mean(losses)))  # blocks until the epoch is done
            epoch_seconds[name].append(time.perf_counter() - start)
            seconds[name] += epoch_seconds[name][-1]
            state[name] = (params, opt_state)
        record.update(epochs_run=epoch + 1, train_seconds=dict(seconds), train_elbo_per_epoch=train_elbo,
                      epoch_seconds=epoch_seconds)
        _write(path, record)
        print(f"epoch {epoch + 1}: train ELBO " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in train_elbo.items())
              + f"; seconds so far {seconds}", flush=True)
        per_epoch = sum(seconds.values()) / (epoch + 1)
        if time.time() + per_epoch + 1.2 * eval_seconds > deadline and epoch + 1 < args.epochs:
            print(f"stopping after {epoch + 1} epochs to finish before the deadline {args.deadline} UTC",
                  flush=True)
            break
    return {name: state[name][0] for name in contenders}, evaluators, seconds


def main(argv=None) -> int:
    """Trains both VAEs, evaluates them, writes the JSON record and prints a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--deadline", default=None, help="HH:MM UTC by which everything must finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-importance", type=int, default=1000)
    parser.add_argument("--n-train", type=int, default=None, help="use a subset (smoke runs)")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--out", default=str(RESULTS / "vae_mnist_full.json"))
    args = parser.parse_args(argv)
    start_all = time.perf_counter()
    data = mnist.load_mnist(_data_dir(args.data_dir))
    key_init, key_train, key_test, key_eval = jax.random.split(jax.random.key(args.seed), 4)
    x_train = jnp.asarray(data.x_train[: args.n_train])
    x_test = jax.random.bernoulli(key_test, jnp.asarray(data.x_test[: args.n_test])).astype(jnp.float32)
    params0 = vae.init_params(key_init)
    path = Path(args.out)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")
    record = {"benchmark": "vae_mnist_full", "date_utc": now,
              "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
              "jax": jax.__version__, "settings": vars(args), "n_train": int(x_train.shape[0]),
              "n_test": int(x_test.shape[0]), "epochs_requested": args.epochs}
    params, evaluators, train_seconds = _train(args, record, path, params0, x_train, x_test, key_train,
                                               key_eval)
    results, per_digit = {}, {}
    for name, evaluate in evaluators.items():
        start = time.perf_counter()
        per_digit[name] = [np.asarray(a, np.float64) for a in evaluate(params[name], key_eval, x_test,
                                                                       args.n_importance)]
        results[name] = {**_summary(*per_digit[name]), "train_seconds": train_seconds[name],
                         "eval_seconds": time.perf_counter() - start}
    difference = per_digit["dsl"][1] - per_digit["handwritten"][1]
    record.update(results=results, total_seconds=time.perf_counter() - start_all,
                  paired_log_likelihood_difference={
                      "mean": float(difference.mean()),
                      "stderr": float(difference.std(ddof=1) / math.sqrt(len(difference)))})
    _write(path, record)
    print(table(record))
    return 0


def table(record: dict) -> str:
    """The markdown table of a finished record."""
    n_importance = record["settings"]["n_importance"]
    lines = [f"| model | epochs | test ELBO (nats) | test log-likelihood, IS {n_importance} (nats) | train s "
             "| eval s |",
             "|---|---|---|---|---|---|"]
    for name, r in record["results"].items():
        lines.append(f"| {name} | {record['epochs_run']} "
                     f"| {r['test_elbo']:.2f} ± {r['test_elbo_stderr']:.2f} "
                     f"| {r['test_log_likelihood']:.2f} ± {r['test_log_likelihood_stderr']:.2f} "
                     f"| {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} |")
    d = record["paired_log_likelihood_difference"]
    lines.append(f"\nDSL - hand-written log-likelihood, paired over the test digits: {d['mean']:.3f} "
                 f"± {d['stderr']:.3f} nats (± = standard error over the {record['n_test']} digits).")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
