"""The UCI regression table: BNN by SGVB and SGHMC on the published splits, next to the published
PBP, mean-field VI and MC-dropout figures.

Runs (dataset, method, split) units round-robin over splits (split 0 of every data set and method
first, then split 1, ...) so that every data set has results when the deadline comes; a unit is
started only if its expected duration (the previous split's, which includes no compilation after
the first) fits before `--deadline` (UTC, HH:MM). Every split of a data set has the same shapes, so
each (data set, method) compiles once and later splits reuse the program. Writes `--out` (JSON:
every unit, and per data set and method the mean and standard error over the splits run) after
every unit, so a stopped run keeps what it did; `--resume` skips the units already there.

Budget: a fixed number of gradient steps per split (`STEPS`), not of epochs, since the data sets
range from 277 to 41,157 training points; see `settings`.

Usage: `python -m benchmarks.bnn_uci --data-dir ../shared/data --splits 20 --deadline 01:30`.
Tuning (validation part of the training sets only): `python -m benchmarks.bnn_uci --tune
'[{"learning_rate": 0.03}, {"learning_rate": 0.1}]' --datasets yacht,concrete`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from pathlib import Path

import jax
import numpy as np

from models import bnn, cli
from models.data import uci

# Published means over the 20 splits (5 for protein). RMSE and test LL of the VI column (Graves
# 2011, as run by Hernandez-Lobato and Adams 2015, Tables 1-2), PBP (same tables) and MC-dropout
# (Gal and Ghahramani 2016, Table 1; the DropoutUncertaintyExps README reproduces this column).
# Their +- spreads are not used here: the MC-dropout column's are standard deviations over the
# splits, the PBP/VI columns' standard errors.
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
# Gradient steps per split (SGHMC: all chains together, a third of them burn-in).
STEPS = {"sghmc": {"small": 12000, "large": 8000}, "sgvb": {"small": 6000, "large": 6000}}
# The model and sampler settings of the table (chosen on validation data, see the README); SGHMC's
# learning rate is `c / N` with `c` per size class.
MODEL = {"noise_prior": (1.0, 0.1), "weight_prior": (6.0, 6.0)}
SGHMC = {"friction": 0.2, "n_chains": 4}
SGHMC_RATE = {"small": 0.03, "large": 0.1}


def settings(name: str, method: str, n_train: int, quick: bool = False, steps_scale: float = 1.0) -> dict:
    """Batch size and epochs for a data set: batch 32 (100 for the large sets) and as many epochs as
    the `STEPS` budget allows (SGHMC: `epochs` sampled after `epochs // 2` burn-in epochs, and
    its `learning_rate` times N)."""
    size = "large" if name in LARGE else "small"
    batch_size = 100 if size == "large" else 32
    per_epoch = n_train // batch_size
    steps = STEPS[method][size] * steps_scale
    epochs = math.ceil(steps / per_epoch / (1.5 if method == "sghmc" else 1.0))
    config = {"epochs": 2 if quick else epochs, "batch_size": batch_size}
    if method == "sghmc":
        config["learning_rate"] = SGHMC_RATE[size]
    return config


def _fit(key, data, method, n_hidden, config, **overrides):
    options = dict(MODEL)
    if method == "sghmc":
        options.update(SGHMC, learning_rate=config["learning_rate"])
    options.update(overrides)
    return bnn.fit(key, data, method=method, n_hidden=n_hidden, n_epochs=config["epochs"],
                   batch_size=config["batch_size"], **options)


def run_unit(name, method, split, data_dir, seed=0, quick=False, steps_scale=1.0) -> dict:
    loaded = uci.load_uci(name, data_dir, split=split)
    data = uci.standardize(loaded)
    config = settings(name, method, len(loaded.y_train), quick, steps_scale)
    start = time.time()
    posterior = _fit(jax.random.fold_in(jax.random.key(seed), split), data, method, loaded.n_hidden, config)
    metrics = bnn.evaluate(posterior, data)
    return dict(metrics, seconds=time.time() - start, **config)


def validation_split(split: uci.UCISplit, fraction: float = 0.2, seed: int = 0) -> uci.UCISplit:
    """The training part of `split` cut in two: `x_test`/`y_test` become a held-out `fraction` of it."""
    perm = np.random.default_rng(seed).permutation(len(split.y_train))
    n_val = int(round(fraction * len(perm)))
    train, val = perm[n_val:], perm[:n_val]
    return split._replace(x_train=split.x_train[train], y_train=split.y_train[train],
                          x_test=split.x_train[val], y_test=split.y_train[val])


def tune(grid: list[dict], names: list[str], data_dir, splits=(0, 1)) -> list[dict]:
    """SGHMC on the validation part of the training set of `splits`, for each override in `grid`
    (keys: `fit` arguments, and `steps` for the budget). No test data is read."""
    rows = []
    for name in names:
        for overrides in grid:
            overrides, results, start = dict(overrides), [], time.time()
            steps = overrides.pop("steps", None)
            for k in splits:
                split = validation_split(uci.load_uci(name, data_dir, split=k))
                config = settings(name, "sghmc", len(split.y_train))
                if steps is not None:
                    config["epochs"] = math.ceil(steps / (len(split.y_train) // config["batch_size"]) / 1.5)
                data = uci.standardize(split)
                posterior = _fit(jax.random.key(k), data, "sghmc", split.n_hidden, config, **overrides)
                results.append(bnn.evaluate(posterior, data))
            row = {"dataset": name, **overrides, "steps": steps,
                   "val_rmse": float(np.mean([r["rmse"] for r in results])),
                   "val_ll": float(np.mean([r["test_log_likelihood"] for r in results])),
                   "seconds": time.time() - start}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def summarize(units: list[dict]) -> dict:
    results: dict = {}
    for unit in units:
        results.setdefault(unit["dataset"], {}).setdefault(unit["method"], []).append(unit)
    out: dict = {}
    for name, methods in results.items():
        for method, runs in methods.items():
            runs = sorted(runs, key=lambda r: r["split"])
            out.setdefault(name, {})[method] = {
                "rmse": cli.split_summary([r["rmse"] for r in runs]),
                "test_log_likelihood": cli.split_summary([r["test_log_likelihood"] for r in runs]),
                "splits": len(runs), "split_indices": [r["split"] for r in runs],
                "epochs": runs[0]["epochs"], "batch_size": runs[0]["batch_size"],
                "seconds_per_split": [r["seconds"] for r in runs]}
    return out


def markdown(results: dict) -> str:
    lines = ["| data set | splits (SGVB/SGHMC) | SGVB RMSE | SGHMC RMSE | VI | PBP | MC-dropout "
             "| SGVB test LL | SGHMC test LL | VI | PBP | MC-dropout |", "|---" * 12 + "|"]

    def cell(row, method, metric):
        if method not in row:
            return "-"
        digits = 4 if abs(row[method][metric]["mean"]) < 0.05 else 3
        return f"{row[method][metric]['mean']:.{digits}f} +- {row[method][metric]['stderr']:.{digits}f}"

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


def _write(out: Path, units: list[dict], args) -> dict:
    results = summarize(units)
    out.write_text(json.dumps({
        "results": results, "published": PUBLISHED, "units": units,
        "protocol": {"splits": args.splits, "steps": STEPS, "steps_scale": args.steps_scale, "model": MODEL,
                     "sghmc": dict(SGHMC, learning_rate_times_n=SGHMC_RATE),
                     "sgvb": {"adam_learning_rate": 0.01, "particles": bnn.N_PARTICLES,
                              "posterior_draws": 100},
                     "order": "round-robin over splits until the deadline"},
        "table": markdown(results)}, indent=1) + "\n")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--deadline", default=None, help="UTC HH:MM; no unit starts that would end later")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--datasets", default=",".join(ORDER))
    parser.add_argument("--methods", default="sgvb,sghmc")
    parser.add_argument("--out", default="benchmarks/results/bnn_uci.json")
    parser.add_argument("--resume", action="store_true", help="keep and skip the units already in --out")
    parser.add_argument("--quick", action="store_true", help="2 epochs (a smoke run)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiplies the STEPS budgets")
    parser.add_argument("--tune", default=None, help="JSON list of SGHMC overrides to try on validation data")
    args = parser.parse_args(argv)
    jax.config.update("jax_compilation_cache_dir", "/tmp/jax_cache_bnn_uci")
    names, methods = args.datasets.split(","), args.methods.split(",")
    if args.tune:
        tune(json.loads(args.tune), names, args.data_dir)
        return 0
    deadline = None
    if args.deadline:
        hour, minute = map(int, args.deadline.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        deadline = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if deadline < now:
            deadline += dt.timedelta(days=1)
        deadline = deadline.timestamp()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    units = json.loads(out.read_text())["units"] if args.resume and out.exists() else []
    done = {(u["dataset"], u["method"], u["split"]) for u in units}
    last_seconds: dict = {}
    for split in range(args.splits):
        for name in names:
            if split >= uci.n_splits(name, args.data_dir):
                continue
            for method in methods:
                if (name, method, split) in done:
                    continue
                expected = last_seconds.get((name, method), 0.0)
                if deadline is not None and time.time() + expected > deadline:
                    print(f"skip {name} {method} split {split}: expected {expected:.0f} s passes the "
                          "deadline", flush=True)
                    continue
                unit = run_unit(name, method, split, args.data_dir, quick=args.quick,
                                steps_scale=args.steps_scale)
                last_seconds[(name, method)] = unit["seconds"]
                units.append(dict(unit, dataset=name, method=method, split=split))
                print(f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} {name} {method} split {split}: rmse "
                      f"{unit['rmse']:.4g} ll {unit['test_log_likelihood']:.3f} ({unit['seconds']:.0f} s)",
                      flush=True)
                _write(out, units, args)
    print(markdown(summarize(units)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
