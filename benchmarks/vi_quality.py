"""Quality on binarized MNIST: VAE (k = 1), IWAE-5 and IWAE-50 trained with the same small budget.

All three use the same network (`models.vae.iwae`: 50 latent units, 200-200 ReLU encoder/decoder), the
same Adam settings (learning rate 1e-3, batches of 100) and the same number of passes over the
60000 train+valid digits; the test log-likelihood is the importance-sampled estimate with 5000
samples per digit (Burda et al.'s protocol) on the first `--n-test` test digits, the same for all.
Burda et al. (2015, Table 1, one stochastic layer, 3280 passes) report VAE -86.76 and IWAE-50
-84.78 nats.

Usage: `python -m benchmarks.vi_quality --data-dir ../shared/data --epochs 1 --n-test 200`
(writes `benchmarks/results/vi_quality.json` after each model).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax

from models.data import mnist
from models.vae import iwae
from models.vae import model as vae

__all__ = ["main"]

PAPER = {1: -86.76, 5: None, 50: -84.78}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PPL_DATA_DIR", "../shared/data"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--n-importance", type=int, default=5000)
    parser.add_argument("--ks", default="1,5,50")
    parser.add_argument("--out", default="benchmarks/results/vi_quality.json")
    args = parser.parse_args(argv)
    data = mnist.load_binarized_mnist(args.data_dir)
    x_test = data.x_test[: args.n_test]
    rows = []
    for k in [int(k) for k in args.ks.split(",")]:
        key_fit, key_eval = jax.random.split(jax.random.key(0))
        result = iwae.fit(key_fit, data.x_train, n_particles=k, n_epochs=args.epochs, progress_bar=False)
        start = time.perf_counter()
        scores = vae.evaluate(result.params, key_eval, x_test, n_importance=args.n_importance,
                              batch_size=max(1, 50000 // args.n_importance))
        rows.append({"k": k, "model": "VAE" if k == 1 else f"IWAE-{k}", "epochs": args.epochs,
                     "train_bound_last_epoch": float(result.train_bound[-1]), **scores,
                     "train_seconds": result.seconds, "eval_seconds": time.perf_counter() - start,
                     "burda_2015_table1": PAPER.get(k)})
        print(json.dumps(rows[-1]), flush=True)
        Path(args.out).write_text(json.dumps(
            {"dataset": "binarized_mnist", "n_train": len(data.x_train), "n_test": len(x_test),
             "n_importance": args.n_importance, "batch_size": 100, "learning_rate": 1e-3, "rows": rows},
            indent=2) + "\n")


if __name__ == "__main__":
    main()
