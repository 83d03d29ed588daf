"""Gaussian processes on UCI regression: SVGP vs ZhuSuan's published numbers, exact GP vs scikit-learn.

Run: `python -m benchmarks.gp_uci [--data-dir DIR] [--datasets ...] [--splits K] [--epochs N]
[--batch-size B] [--particles S] [--keep] [--skip-exact] [--out FILE]`.

1. SVGP (100 inducing points, RBF-ARD kernel; by default ZhuSuan's budget: 5000 epochs of
   minibatches of 5000 points, 20 samples of q per step, Adam 0.01) on the first K published splits
   of each data set in `--datasets`; RMSE and NLL in original units, mean (standard error) over
   splits. The splits of a data set have equal sizes, so one compiled training program serves them
   all (each row records `compiled_programs`, the number of `inference.fit` programs built so far).
   ZhuSuan's `svgp.py` reports Boston RMSE 2.90 (0.40) / NLL 2.52 (0.10) and Protein RMSE 4.49 (0.03) /
   NLL 2.93 (0.01) with 100 inducing points.
2. Exact GP (RBF-ARD, type-II ML by Adam) against scikit-learn's `GaussianProcessRegressor` with the
   same kernel (`ConstantKernel * RBF(ARD) + WhiteKernel`, L-BFGS-B, 2 restarts) on Boston split 0.

Results are written after each split, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from inference.train_step import build_program
from models import cli
from models.data import uci
from models.gp import cli as gp
from models.gp import exact as gp_exact

ZHUSUAN = {"boston": {"rmse": (2.90, 0.40), "nll": (2.52, 0.10)},
           "protein": {"rmse": (4.49, 0.03), "nll": (2.93, 0.01)}}


def _options(**kwargs) -> dict:
    defaults = dict(method="svgp", kernel="rbf", inducing=100, n_epochs=5000, batch_size=5000, n_particles=20,
                    learning_rate=0.01)
    defaults.update(kwargs)
    return defaults


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def svgp_runs(datasets, data_dir, splits, config, results, out):
    """Fits every requested split; writes `out` after each split (an interrupted run keeps them)."""
    for name in datasets:
        if name != "boston" and data_dir is None:
            print(f"skip {name}: needs --data-dir")
            continue
        n = min(splits, uci.n_splits(name, data_dir))
        keys = jax.random.split(jax.random.key(0), n)
        entry = results["svgp"][name] = {"config": dict(config), "started": _now(), "per_split": []}
        for k in range(n):
            load = os.getloadavg()[0]
            row = gp.fit_uci_split(keys[k], uci.load_uci(name, data_dir, split=k), **_options(**config))
            # one compiled training program per data set: the splits have equal sizes
            row.update(split=k, load_average=load, compiled_programs=build_program.cache_info().currsize)
            print(f"svgp {name} split {k}: {row}", flush=True)
            entry["per_split"].append(row)
            for metric in ("rmse", "nll", "seconds"):
                entry[metric] = cli.split_summary([r[metric] for r in entry["per_split"]])
            entry["splits"], entry["finished"] = k + 1, _now()
            Path(out).write_text(json.dumps(results, indent=2) + "\n")


def exact_vs_sklearn(data_dir, results, out, n_steps=500):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    split = uci.load_uci("boston", data_dir, split=0)
    data = uci.standardize(split)
    row = {}
    d = data.x_train.shape[1]
    x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.float32)
    start = time.perf_counter()
    fitted = gp_exact.fit_exact(x, y, "rbf", gp_exact.init_params(d, lengthscale=float(np.sqrt(d))),
                                n_steps=n_steps, learning_rate=0.05)
    hyper, trace = fitted.params, fitted.history["log_marginal_likelihood"]
    mean, var = gp_exact.exact_posterior(hyper, x, y, np.asarray(data.x_test, np.float32))
    var = np.asarray(var + np.exp(hyper.log_noise_variance), np.float64) * data.y_std**2
    mean = data.unstandardize_y(np.asarray(mean, np.float64))
    row["ours"] = {"rmse": float(np.sqrt(np.mean((mean - split.y_test) ** 2))),
                   "nll": gp.gaussian_nll(split.y_test, mean, var), "seconds": time.perf_counter() - start,
                   "log_marginal_likelihood": float(trace[-1]), "adam_steps": n_steps}
    d = data.x_train.shape[1]
    kernel = ConstantKernel(1.0) * RBF(np.full(d, np.sqrt(d))) + WhiteKernel(0.1)
    start = time.perf_counter()
    model = GaussianProcessRegressor(kernel, n_restarts_optimizer=2, random_state=0)
    model.fit(data.x_train, data.y_train)
    mean, std = model.predict(data.x_test, return_std=True)
    seconds = time.perf_counter() - start
    mean, var = data.unstandardize_y(mean), (std * data.y_std) ** 2
    row["sklearn"] = {"rmse": float(np.sqrt(np.mean((mean - split.y_test) ** 2))),
                      "nll": gp.gaussian_nll(split.y_test, mean, var), "seconds": seconds,
                      "log_marginal_likelihood": float(model.log_marginal_likelihood_value_)}
    print(f"exact vs sklearn (boston split 0): {row}", flush=True)
    results["exact_vs_sklearn"] = row
    Path(out).write_text(json.dumps(results, indent=2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PPL_DATA_DIR"))
    parser.add_argument("--datasets", nargs="+", default=["boston"])
    parser.add_argument("--splits", type=int, default=20, help="first K published splits")
    parser.add_argument("--epochs", type=int, default=5000, help="passes over the data (ZhuSuan: 5000)")
    parser.add_argument("--batch-size", type=int, default=5000, help="minibatch size (ZhuSuan: 5000)")
    parser.add_argument("--particles", type=int, default=20, help="samples of q per step (ZhuSuan: 20)")
    parser.add_argument("--learning-rate", type=float, default=0.01, help="Adam step size (ZhuSuan: 0.01)")
    parser.add_argument("--out", default="benchmarks/results/gp_uci.json")
    parser.add_argument("--keep", action="store_true",
                        help="add to the SVGP results already in --out")
    parser.add_argument("--skip-exact", action="store_true",
                        help="keep the exact-vs-sklearn result already in --out instead of re-running it")
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    results = {"svgp": dict(old.get("svgp", {})) if args.keep else {}, "zhusuan": ZHUSUAN,
               "device": jax.devices()[0].device_kind, "cpu_affinity": sorted(os.sched_getaffinity(0))}
    if args.skip_exact and "exact_vs_sklearn" in old:
        results["exact_vs_sklearn"] = old["exact_vs_sklearn"]
    else:
        exact_vs_sklearn(args.data_dir, results, args.out)
    config = dict(n_epochs=args.epochs, batch_size=args.batch_size, n_particles=args.particles,
                  learning_rate=args.learning_rate, inducing=100)
    svgp_runs(args.datasets, args.data_dir, args.splits, config, results, args.out)


if __name__ == "__main__":
    main()
