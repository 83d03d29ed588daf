"""LDA on the Reuters corpus: our SVI (SGVB, Dirichlet q) vs scikit-learn's LatentDirichletAllocation.

Run: `python -m benchmarks.lda_vs_sklearn [--topics K ...] [--steps N] [--out FILE]`.

Same 80/20 document split and the same document-completion protocol for both (see `models.lda`):
held-out per-word perplexity (lower is better) and fit time (seconds, one fit each: on the shared
2-core machine these times are indicative only). Results are written after each K.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from models import lda


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, nargs="+", default=[10])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default="benchmarks/results/lda_vs_sklearn.json")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = {}
    for k in args.topics:
        ns = argparse.Namespace(seed=0, topics=k, steps=args.steps, batch_size=64, alpha=0.1, beta=0.05,
                                learning_rate=0.05, test_fraction=0.2, docword=None, vocab=None,
                                no_sklearn=False, method="svi")
        metrics, _ = lda.run(ns)
        metrics.pop("top_words")
        print(f"K={k}: {metrics}", flush=True)
        results[str(k)] = metrics
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
