"""Gaussian processes on UCI regression: SVGP vs ZhuSuan's published numbers, exact GP vs scikit-learn.

Run: `python -m benchmarks.gp_uci [--data-dir DIR] [--splits K] [--epochs N] [--out FILE]`.

1. SVGP (100 inducing points, RBF-ARD kernel, Adam 0.01, full batch up to 5000 points) on the
   first K published splits of each data set in `--datasets`; RMSE and NLL in original units, mean
   (standard error) over splits. ZhuSuan's `svgp.py` reports Boston RMSE 2.90 (0.40) / NLL 2.52
   (0.10) and Protein RMSE 4.49 (0.03) / NLL 2.93 (0.01) with 100 inducing points.
2. Exact GP (RBF-ARD, type-II ML by Adam) against scikit-learn's `GaussianProcessRegressor` with the
   same kernel (`ConstantKernel * RBF(ARD) + WhiteKernel`, L-BFGS-B, 2 restarts) on Boston split 0.

Results are written after each data set, so an interrupted run keeps what finished.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from models import cli, gp, gp_exact, uci

ZHUSUAN = {"boston": {"rmse": (2.90, 0.40), "nll": (2.52, 0.10)},
           "protein": {"rmse": (4.49, 0.03), "nll": (2.93, 0.01)}}


def _args(**kwargs) -> argparse.Namespace:
    defaults = dict(method="svgp", kernel="rbf", inducing=100, epochs=1500, batch_size=5000, particles=10,
                    learning_rate=0.01)
    defaults.update(kwargs)
    return argparse.Namespace(**defaults)


def svgp_runs(datasets, data_dir, splits, epochs, results, out):
    for name in datasets:
        if name != "boston" and data_dir is None:
            print(f"skip {name}: needs --data-dir")
            continue
        n = min(splits, uci.n_splits(name, data_dir))
        keys = jax.random.split(jax.random.key(0), n)
        rows = []
        for k in range(n):
            row = gp.fit_uci_split(keys[k], uci.load_uci(name, data_dir, split=k), _args(epochs=epochs))
            print(f"svgp {name} split {k}: {row}", flush=True)
            rows.append(row)
        metrics = ("rmse", "nll", "seconds")
        results["svgp"][name] = {m: cli.split_summary([r[m] for r in rows]) for m in metrics}
        results["svgp"][name]["epochs"] = epochs
        Path(out).write_text(json.dumps(results, indent=2))


def exact_vs_sklearn(data_dir, results, out, n_steps=500):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    split = uci.load_uci("boston", data_dir, split=0)
    data = uci.standardize(split)
    row = {}
    d = data.x_train.shape[1]
    x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.float32)
    start = time.perf_counter()
    hyper, trace = gp_exact.fit_exact(x, y, "rbf", gp_exact.init_params(d, lengthscale=float(np.sqrt(d))),
                                      n_steps=n_steps, learning_rate=0.05)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PPL_DATA_DIR"))
    parser.add_argument("--datasets", nargs="+", default=["boston"])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--out", default="benchmarks/results/gp_uci.json")
    parser.add_argument("--skip-exact", action="store_true",
                        help="keep the exact-vs-sklearn result already in --out instead of re-running it")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = {"svgp": {}, "zhusuan": ZHUSUAN, "device": jax.devices()[0].device_kind}
    if args.skip_exact and Path(args.out).is_file():
        results["exact_vs_sklearn"] = json.loads(Path(args.out).read_text()).get("exact_vs_sklearn")
    else:
        exact_vs_sklearn(args.data_dir, results, args.out)
    svgp_runs(args.datasets, args.data_dir, args.splits, args.epochs, results, args.out)


if __name__ == "__main__":
    main()
