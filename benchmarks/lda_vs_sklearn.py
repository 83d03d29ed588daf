"""Topic models on the Reuters corpus: our LDA (SVI) and LNTM (Monte Carlo EM) vs scikit-learn's LDA.

Run: `python -m benchmarks.lda_vs_sklearn [--methods svi lntm] [--topics K ...] [--steps N]
[--epochs N] [--beta B] [--log-delta D] [--out FILE]`.

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

from models.topics import cli as lda


def _namespace(args, method, k):
    return argparse.Namespace(
        seed=0, topics=k, method=method, steps=args.steps, epochs=args.epochs, batch_size=64, alpha=0.1,
        beta=args.beta, learning_rate=0.05, test_fraction=0.2, docword=None, vocab=None, no_sklearn=False,
        log_delta=args.log_delta, lntm_learning_rate=1.0, ais_chains=args.ais_chains,
        ais_temperatures=args.ais_temperatures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["svi", "lntm"], choices=["svi", "lntm"])
    parser.add_argument("--topics", type=int, nargs="+", default=[10])
    parser.add_argument("--steps", type=int, default=1000, help="SVI steps")
    parser.add_argument("--beta", type=float, default=0.1, help="SVI: Dirichlet prior of the topics")
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
    results = {m: v for m, v in old.items() if m in ("svi", "lntm")}
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
