"""The UCI regression table: BNN by SGVB and SGHMC on the published splits, next to the published
PBP, mean-field VI and MC-dropout figures.

Runs (dataset, method, split) units round-robin over splits (split 0 of every data set and method
first, then split 1, ...) so that every data set has results when the deadline comes; a unit is
started only if its expected duration (the previous split's, which includes no compilation after
the first) fits before `--deadline` (UTC, HH:MM). Writes `benchmarks/results/bnn_uci.json` after
every unit (per-split values, mean, standard error over the splits run) and a markdown table.

Usage: `python -m benchmarks.bnn_uci --data-dir ../shared/data --deadline 23:05 [--splits 5]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import jax

from models import bnn, cli, uci

# Gal and Ghahramani (2016), Table 1: mean +- the published spread over the 20 splits (5 for
# protein); the VI column is the mean-field VI of Graves (2011) as run by Hernandez-Lobato and
# Adams (2015); PBP from Hernandez-Lobato and Adams (2015).
PUBLISHED = {
    # name: {"rmse": (VI, PBP, MC-dropout), "ll": (VI, PBP, MC-dropout)}
    "boston": {"rmse": (4.32, 3.01, 2.97), "ll": (-2.90, -2.57, -2.46)},
    "concrete": {"rmse": (7.19, 5.67, 5.23), "ll": (-3.39, -3.16, -3.04)},
    "energy": {"rmse": (2.65, 1.80, 1.66), "ll": (-2.39, -2.04, -1.99)},
    "kin8nm": {"rmse": (0.10, 0.10, 0.10), "ll": (0.90, 0.90, 0.95)},
    "naval": {"rmse": (0.01, 0.01, 0.01), "ll": (3.73, 3.73, 3.80)},
    "power": {"rmse": (4.33, 4.12, 4.02), "ll": (-2.89, -2.84, -2.80)},
    "protein": {"rmse": (4.84, 4.73, 4.36), "ll": (-2.99, -2.97, -2.89)},
    "wine": {"rmse": (0.65, 0.64, 0.62), "ll": (-0.98, -0.97, -0.93)},
    "yacht": {"rmse": (6.89, 1.02, 1.11), "ll": (-3.43, -1.63, -1.55)},
}
ORDER = ["yacht", "boston", "energy", "concrete", "wine", "kin8nm", "power", "naval", "protein"]
LARGE = {"kin8nm", "power", "naval", "protein"}


def settings(name: str, quick: bool = False) -> dict:
    """Epochs and batch size per data set (fewer epochs, bigger batches for the large ones)."""
    if name == "protein":
        config = {"epochs": 20, "batch_size": 100}
    elif name in LARGE:
        config = {"epochs": 40, "batch_size": 100}
    else:
        config = {"epochs": 200, "batch_size": 32}
    if quick:
        config["epochs"] = 2
    return config


def run_unit(name, method, split, data_dir, seed=0, quick=False) -> dict:
    loaded = uci.load_uci(name, data_dir, split=split)
    data = uci.standardize(loaded)
    config = settings(name, quick)
    start = time.time()
    posterior = bnn.fit(jax.random.fold_in(jax.random.key(seed), split), data, method=method,
                        n_hidden=loaded.n_hidden, epochs=config["epochs"], batch_size=config["batch_size"],
                        n_chains=4)
    metrics = bnn.evaluate(posterior, data)
    return dict(metrics, seconds=time.time() - start, **config)


def markdown(results: dict) -> str:
    lines = ["| data set | splits | SGVB RMSE | SGHMC RMSE | VI | PBP | MC-dropout | SGVB test LL "
             "| SGHMC test LL | VI | PBP | MC-dropout |", "|---" * 12 + "|"]
    def cell(row, method, metric):
        if method not in row:
            return "-"
        return f"{row[method][metric]['mean']:.3f} +- {row[method][metric]['stderr']:.3f}"

    for name in ORDER:
        row = results.get(name, {})
        splits = "/".join(str(row[m]["splits"]) if m in row else "0" for m in ("sgvb", "sghmc"))
        published = PUBLISHED[name]
        rmse = " | ".join(f"{v:.2f}" for v in published["rmse"])
        ll = " | ".join(f"{v:.2f}" for v in published["ll"])
        lines.append(f"| {name} | {splits} | {cell(row, 'sgvb', 'rmse')} | {cell(row, 'sghmc', 'rmse')} "
                     f"| {rmse} | {cell(row, 'sgvb', 'test_log_likelihood')} "
                     f"| {cell(row, 'sghmc', 'test_log_likelihood')} | {ll} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--deadline", default=None, help="UTC HH:MM; no unit starts that would end later")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--datasets", default=",".join(ORDER))
    parser.add_argument("--methods", default="sgvb,sghmc")
    parser.add_argument("--out", default="benchmarks/results/bnn_uci.json")
    parser.add_argument("--quick", action="store_true", help="2 epochs (a smoke run)")
    args = parser.parse_args(argv)
    jax.config.update("jax_compilation_cache_dir", "/tmp/jax_cache_bnn_uci")
    # XLA on CPU takes minutes to compile multi-dimensional threefry draws in the "partitionable"
    # mode (jax.random.normal(key, (10, 50, 14)): 75 s vs 4 s here); this only changes which
    # random numbers are drawn, not their distribution.
    jax.config.update("jax_threefry_partitionable", False)
    deadline = None
    if args.deadline:
        hour, minute = map(int, args.deadline.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        deadline = now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()
    names, methods = args.datasets.split(","), args.methods.split(",")
    per_split = {name: {method: [] for method in methods} for name in names}
    last_seconds: dict = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for split in range(args.splits):
        for name in names:
            if split >= uci.n_splits(name, args.data_dir):
                continue
            for method in methods:
                expected = last_seconds.get((name, method), 0.0)
                if deadline is not None and time.time() + expected > deadline:
                    print(f"skip {name} {method} split {split}: expected {expected:.0f} s passes the "
                          "deadline", flush=True)
                    continue
                unit = run_unit(name, method, split, args.data_dir, quick=args.quick)
                last_seconds[(name, method)] = unit["seconds"]
                per_split[name][method].append(unit)
                print(f"{name} {method} split {split}: rmse {unit['rmse']:.3f} "
                      f"ll {unit['test_log_likelihood']:.3f} ({unit['seconds']:.0f} s)", flush=True)
                runs = per_split[name][method]
                results.setdefault(name, {})[method] = {
                    "rmse": cli.split_summary([r["rmse"] for r in runs]),
                    "test_log_likelihood": cli.split_summary([r["test_log_likelihood"] for r in runs]),
                    "splits": len(runs), "split_indices": list(range(len(runs))),
                    "epochs": runs[0]["epochs"], "batch_size": runs[0]["batch_size"], "n_chains": 4,
                    "seconds_per_split": [r["seconds"] for r in runs]}
                out.write_text(json.dumps({"results": results, "published": PUBLISHED,
                                           "protocol": "first K published splits of each data set, "
                                                       "round-robin until the deadline; see settings()",
                                           "table": markdown(results)}, indent=2) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
