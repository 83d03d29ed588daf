"""Latent Dirichlet allocation by SVI (SGVB), with held-out perplexity against scikit-learn's LDA.

`python -m models lda [--method svi] [--topics K] [--out DIR]` splits the corpus's documents 80/20,
fits LDA to the training documents, and evaluates by document completion: each test document's
tokens are split at random into halves; its topic proportions are inferred from the first half and
the per-word perplexity is measured on the second. scikit-learn's `LatentDirichletAllocation`
(variational Bayes) is fitted to the same training documents with the same K and evaluated with
the same protocol (proportions from its `transform`, topics from its normalised `components_`).
Writes `metrics.json` (`perplexity`, `sklearn_perplexity`, `seconds`, `sklearn_seconds`),
`top_words.txt` and `elbo.png`. Default corpus: the 395 Reuters stories of the `lda` package;
`--docword FILE --vocab FILE` reads a UCI bag-of-words corpus instead.

The model is in `models.lda_model`; the loaders in `models.corpus`.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from models import cli, corpus, lda_model

__all__ = ["add_arguments", "main", "run", "sklearn_perplexity", "top_words"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `lda` command's flags."""
    cli.add_common_arguments(parser, name="lda", method="svi", methods=["svi"])
    parser.add_argument("--topics", type=int, default=10, help="number of topics K")
    parser.add_argument("--steps", type=int, default=3000, help="SVI optimiser steps")
    parser.add_argument("--batch-size", type=int, default=64, help="documents per SVI step")
    parser.add_argument("--alpha", type=float, default=0.1, help="Dirichlet prior of the topic proportions")
    parser.add_argument("--beta", type=float, default=0.05, help="Dirichlet prior of the topics")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="Adam step size")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of documents held out")
    parser.add_argument("--docword", default=None, help="UCI docword.NAME.txt[.gz] (instead of Reuters)")
    parser.add_argument("--vocab", default=None, help="UCI vocab.NAME.txt, with --docword")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn reference")


def top_words(topics: np.ndarray, vocab: list[str], n: int = 10) -> list[list[str]]:
    """The `n` most probable words of each topic (`topics`: `[n_topics, n_vocab]`)."""
    order = np.argsort(-np.asarray(topics), axis=1)[:, :n]
    return [[vocab[w] for w in row] for row in order]


def sklearn_perplexity(train, observed, held_out, n_topics: int, seed: int) -> tuple[float, float]:
    """Document-completion perplexity of scikit-learn's LDA (default settings) and its fit time (s)."""
    from sklearn.decomposition import LatentDirichletAllocation

    start = time.perf_counter()
    model = LatentDirichletAllocation(n_components=n_topics, random_state=seed).fit(train)
    seconds = time.perf_counter() - start
    topics = model.components_ / model.components_.sum(1, keepdims=True)
    return lda_model.document_completion_perplexity(model.transform, topics, observed, held_out), seconds


def run(args: argparse.Namespace) -> tuple[dict, np.ndarray]:
    """Fits and evaluates as described in the module docstring.

    Returns:
      `(metrics, elbo_trace [steps])`: the metrics dict written to `metrics.json`, and the SVI trace.

    Raises:
      ValueError: only one of `--docword` and `--vocab` given.
    """
    if (args.docword is None) != (args.vocab is None):
        raise ValueError("--docword and --vocab go together")
    data = corpus.load_reuters() if args.docword is None else corpus.load_uci_bag_of_words(args.docword,
                                                                                           args.vocab)
    counts = data.dense()
    train_index, test_index = corpus.split_documents(counts.shape[0], args.test_fraction, args.seed)
    observed, held_out = corpus.split_words(counts[test_index], args.seed)
    key_fit, key_infer = jax.random.split(jax.random.key(args.seed))
    start = time.perf_counter()
    params, trace = lda_model.fit_lda(key_fit, counts[train_index], args.topics, n_steps=args.steps,
                                      batch_size=min(args.batch_size, len(train_index)), alpha=args.alpha,
                                      beta=args.beta, learning_rate=args.learning_rate)
    topics = np.asarray(jax.block_until_ready(lda_model.topic_word_means(params)))
    seconds = time.perf_counter() - start
    infer = lambda docs: lda_model.infer_document_topics(key_infer, topics, docs, alpha=args.alpha)
    metrics = {"perplexity": lda_model.document_completion_perplexity(infer, topics, observed, held_out),
               "seconds": seconds, "topics": args.topics, "steps": args.steps, "method": args.method,
               "n_train_docs": len(train_index), "n_test_docs": len(test_index),
               "final_elbo_per_token": float(np.mean(trace[-100:]) / counts[train_index].sum()),
               "top_words": top_words(topics, data.vocab)}
    if not args.no_sklearn:
        metrics["sklearn_perplexity"], metrics["sklearn_seconds"] = sklearn_perplexity(
            counts[train_index], observed, held_out, args.topics, args.seed)
    return metrics, np.asarray(trace)


def _plot_trace(path, trace):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(trace, lw=0.5)
    ax.set_xlabel("SVI step")
    ax.set_ylabel("minibatch ELBO estimate (nats)")
    ax.set_ylim(np.percentile(trace, 2), trace.max() + 0.02 * abs(trace.max()))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Runs the `lda` command."""
    out = cli.output_dir(args)
    metrics, trace = run(args)
    lines = [f"topic {k}: {' '.join(words)}" for k, words in enumerate(metrics["top_words"])]
    print("\n".join(lines))
    (out / "top_words.txt").write_text("\n".join(lines) + "\n")
    _plot_trace(out / "elbo.png", trace)
    sk = metrics.get("sklearn_perplexity")
    print(f"held-out perplexity: {metrics['perplexity']:.1f} (ours, {metrics['seconds']:.0f} s)"
          + (f", {sk:.1f} (scikit-learn, {metrics['sklearn_seconds']:.0f} s)" if sk else ""))
    cli.write_metrics(out, metrics)
    return 0
