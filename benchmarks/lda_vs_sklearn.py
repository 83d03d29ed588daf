"""Topic models on the Reuters corpus: our LDA (SVI, SGVB) and LNTM (Monte Carlo EM) vs scikit-learn's LDA.

Run: `python -m benchmarks.lda_vs_sklearn [--methods svi sgvb lntm] [--topics K ...] [--steps N]
[--epochs N] [--svi-epochs N] [--beta B] [--log-delta D] [--step-time] [--out FILE]`.

`--step-time` also times one compiled SVI update of the default minibatch (64 Reuters documents,
K = 10) for `svi` (closed-form natural gradient) and `sgvb` (reparameterised Dirichlet gradients),
the median of repeated calls after a warm-up, into the `step_ms` entry; target < 20 ms for `svi`.

Same 80/20 document split and the same document-completion protocol for every contender (see
`models.topics.cli`): held-out per-word perplexity (lower is better) and fit time (seconds, one fit each:
on the shared 2-core machine these times are indicative only). For the LNTM, also the AIS estimate
of the whole test documents' log-likelihood per word. Each result is written as soon as it is
measured, with the UTC time and the load average at its start.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.lda_step import step_times
from models.topics import cli as lda

_METHODS = ("svi", "sgvb", "lntm")


def _namespace(args, method, k):
    epochs = args.svi_epochs if method == "svi" else args.epochs
    return argparse.Namespace(
        seed=0, topics=k, method=method, steps=args.steps, epochs=epochs, batch_size=64, alpha=0.1,
        beta=args.beta, learning_rate=0.05, test_fraction=0.2, docword=None, vocab=None, no_sklearn=False,
        log_delta=args.log_delta, lntm_learning_rate=1.0, ais_chains=args.ais_chains,
        ais_temperatures=args.ais_temperatures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["svi", "lntm"], choices=list(_METHODS))
    parser.add_argument("--topics", type=int, nargs="+", default=[10])
    parser.add_argument("--steps", type=int, default=1000, help="SGVB steps")
    parser.add_argument("--svi-epochs", type=int, default=100, help="natural-gradient SVI epochs")
    parser.add_argument("--beta", type=float, default=0.3, help="SVI, SGVB: Dirichlet prior of the topics")
    parser.add_argument("--step-time", action="store_true", help="time one compiled SVI and SGVB update")
    parser.add_argument("--epochs", type=int, default=100, help="LNTM Monte Carlo EM epochs")
    parser.add_argument("--log-delta", type=float, default=0.0,
                        help="LNTM: log sd of beta's prior (ZhuSuan's 10 is almost flat)")
    parser.add_argument("--ais-chains", type=int, default=16)
    parser.add_argument("--ais-temperatures", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/results/lda_vs_sklearn.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # results of the other method (from an earlier invocation) are kept
    old = json.loads(out.read_text()) if out.is_file() else {}
    results = {m: v for m, v in old.items() if m in (*_METHODS, "step_ms")}
    if args.step_time:
        results["step_ms"] = step_times()
        print(f"step_ms: {results['step_ms']}", flush=True)
        out.write_text(json.dumps(results, indent=2))
    for method in args.methods:
        for k in args.topics:
            started = {"utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                       "load_average": os.getloadavg()}
            metrics, _ = lda.run(_namespace(args, method, k))
            metrics.pop("top_words")
            metrics["started"] = started
            print(f"{method} K={k}: {metrics}", flush=True)
            results.setdefault(method, {})[str(k)] = metrics
            out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
