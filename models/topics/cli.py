"""Topic models (LDA by SVI, or ZhuSuan's logistic-normal model by Monte Carlo EM) vs scikit-learn's LDA.

`python -m models lda [--method svi|sgvb|lntm] [--topics K] [--out DIR]` splits the corpus's documents
80/20, fits the model to the training documents, and evaluates by document completion: each test
document's tokens are split at random into halves; its topic proportions are inferred from the
first half and the per-word perplexity is measured on the second. scikit-learn's
`LatentDirichletAllocation` (variational Bayes) is fitted to the same training documents with the
same K and evaluated with the same protocol (proportions from its `transform`, topics from its
normalised `components_`). `--method svi` (the default): LDA by closed-form natural-gradient SVI
(`models.topics.online_lda`, `--epochs` passes); `--method sgvb`: the same LDA and Dirichlet q fitted
by reparameterised gradients in the DSL (`models.topics.lda`, `--steps` steps, ~50x slower per step);
`--method lntm`: ZhuSuan's logistic-normal topic model with HMC inside Monte Carlo EM
(`models.topics.lntm`), which also estimates the marginal likelihood of the whole test documents by
AIS (`ais_log_likelihood`, nats per word, and `ais_perplexity`). Writes `metrics.json`
(`perplexity`, `sklearn_perplexity`, `seconds`, `sklearn_seconds`, ...), `top_words.txt` and
`trace.png` (the SVI bound per token, the SGVB ELBO or the EM log-likelihood). Default corpus: the
395 Reuters stories of the `lda` package; `--docword FILE --vocab FILE` reads a UCI bag-of-words
corpus instead.

The loaders are in `models.data.corpus`.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from models import cli
from models.data import corpus
from models.plots import save_figure
from models.topics import lda as lda_model
from models.topics import lntm, online_lda

__all__ = ["add_arguments", "main", "run", "sklearn_perplexity", "top_words"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `lda` command's flags."""
    cli.add_common_arguments(parser, name="lda", method="svi", methods=["svi", "sgvb", "lntm"], epochs=100,
                             data_dir=False)
    parser.add_argument("--topics", type=cli.positive_int, default=10, help="number of topics K")
    parser.add_argument("--steps", type=cli.positive_int, default=3000,
                        help="sgvb: optimiser steps (rounded up to whole epochs)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64, help="documents per SVI step")
    parser.add_argument("--alpha", type=float, default=0.1, help="Dirichlet prior of the topic proportions")
    parser.add_argument("--beta", type=float, default=0.3, help="svi, sgvb: Dirichlet prior of the topics")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="sgvb: Adam step size")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of documents held out")
    parser.add_argument("--docword", default=None, help="UCI docword.NAME.txt[.gz] (instead of Reuters)")
    parser.add_argument("--vocab", default=None, help="UCI vocab.NAME.txt, with --docword")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn reference")
    parser.add_argument("--log-delta", type=float, default=0.0,
                        help="lntm: log standard deviation of the topic logits' Gaussian prior (chosen on a "
                             "validation split; ZhuSuan's 10 is almost flat and over-fits rare words)")
    parser.add_argument("--lntm-learning-rate", type=float, default=1.0, help="lntm: Adam step size on beta")
    parser.add_argument("--ais-chains", type=cli.positive_int, default=16,
                        help="lntm: AIS chains per test document")
    parser.add_argument("--ais-temperatures", type=cli.positive_int, default=500,
                        help="lntm: AIS temperatures")
    cli.add_checkpoint_arguments(parser)


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


def _fit_svi(args, key, train, vocab_size, fit_options):
    """LDA by natural-gradient SVI; returns `(topics, {metric: proportions_fn}, trace, extra, None)`."""
    config = online_lda.OnlineLDAConfig(alpha=args.alpha, beta=args.beta)
    result = online_lda.fit_online_lda(key, train, args.topics, n_epochs=args.epochs,
                                       batch_size=min(args.batch_size, train.shape[0]), config=config,
                                       **fit_options)
    topics = np.asarray(jax.block_until_ready(online_lda.topic_word_means(result.params)))
    alpha, trace = args.alpha, result.history["elbo_per_token"]
    infer = lambda docs: lda_model.fixed_point_document_topics(topics, docs, alpha=alpha)
    extra = {"epochs": args.epochs, "alpha": args.alpha, "beta": args.beta,
             "final_elbo_per_token": float(trace[-1])}
    return topics, {"perplexity": infer}, trace, extra, None


def _fit_sgvb(args, key, train, vocab_size, fit_options):
    """LDA by SGVB; returns `(topics, {metric: proportions_fn}, trace, extra metrics, None)`.

    `--steps` optimiser steps are rounded up to whole epochs of `n_train // batch_size` steps.
    Test proportions by the mean-field fixed point (`perplexity`) and, for comparison, by SGVB on
    q(theta) (`perplexity_sgvb_theta`).
    """
    key_fit, key_infer = jax.random.split(key)
    batch_size = min(args.batch_size, train.shape[0])
    per_epoch = lda_model.steps_per_epoch(train.shape[0], batch_size)
    n_epochs = -(-args.steps // per_epoch)
    result = lda_model.fit_lda(key_fit, train, args.topics, n_epochs=n_epochs, batch_size=batch_size,
                               alpha=args.alpha, beta=args.beta, learning_rate=args.learning_rate,
                               progress_bar=True, **fit_options)
    topics = np.asarray(jax.block_until_ready(lda_model.topic_word_means(result.params)))
    alpha, trace = args.alpha, np.asarray(result.history["elbo"])
    infers = {"perplexity": lambda docs: lda_model.fixed_point_document_topics(topics, docs, alpha=alpha),
              "perplexity_sgvb_theta": lambda docs: lda_model.infer_document_topics(key_infer, topics, docs,
                                                                                    alpha=alpha)}
    last = max(1, -(-100 // per_epoch))                               # the epochs of the last ~100 steps
    extra = {"steps": n_epochs * per_epoch, "epochs": n_epochs, "alpha": args.alpha, "beta": args.beta,
             "final_elbo_per_token": float(np.mean(trace[-last:]) / train.sum()),
             "skipped_steps": int(result.history["n_skipped"].sum())}
    return topics, infers, trace, extra, None


def _fit_lntm(args, key, train, vocab_size, fit_options):
    """The LNTM by Monte Carlo EM; returns `(topics, {metric: proportions_fn}, trace, extra, model)`."""
    key_fit, key_infer = jax.random.split(key)
    config = lntm.LNTMConfig(batch_size=min(args.batch_size, train.shape[0]), log_delta=args.log_delta,
                             learning_rate=args.lntm_learning_rate)
    result = lntm.fit_lntm(key_fit, train, args.topics, vocab_size, n_epochs=args.epochs, config=config,
                           progress_bar=True, **fit_options)
    model = lntm.LNTMState.from_result(result)
    topics = np.asarray(jax.block_until_ready(lntm.topic_word_probs(model)))
    history = result.history
    extra = {"epochs": args.epochs, "log_delta": args.log_delta,
             "final_train_log_likelihood_per_word": float(history["log_likelihood_per_word"][-1]),
             "hmc_acceptance_rate": float(history["acceptance_rate"][-1])}
    infer = lambda docs: np.asarray(lntm.document_topics(key_infer, model, docs, config=config)[0])
    return topics, {"perplexity": infer}, np.asarray(history["log_likelihood_per_word"]), extra, model


def _ais_metrics(args, key, state, test_counts) -> dict:
    """AIS estimate of the whole test documents' log-likelihood under the fitted LNTM."""
    start = time.perf_counter()
    log_marginal, stderr, acceptance = lntm.ais_log_likelihood(
        key, state, test_counts, n_chains=args.ais_chains, n_temperatures=args.ais_temperatures)
    n_tokens = float(test_counts.sum())
    per_word = float(np.sum(log_marginal)) / n_tokens
    return {"ais_log_likelihood": per_word, "ais_perplexity": float(np.exp(-per_word)),
            "ais_log_likelihood_stderr": float(np.sqrt(np.sum(np.square(stderr)))) / n_tokens,
            "ais_acceptance_rate": float(np.mean(acceptance)), "ais_chains": args.ais_chains,
            "ais_temperatures": args.ais_temperatures, "ais_seconds": time.perf_counter() - start}


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Refuses the flags of the other `--method` (sgvb: `--steps`, `--learning-rate`; lntm: `--log-delta`)."""
    cli.reject_unused_flags(given, args.method, {
        "steps": ("sgvb",), "beta": ("svi", "sgvb"), "learning_rate": ("sgvb",),
        "epochs": ("svi", "lntm"), "log_delta": ("lntm",), "lntm_learning_rate": ("lntm",),
        "ais_chains": ("lntm",), "ais_temperatures": ("lntm",)})


def run(args: argparse.Namespace, fit_options: dict | None = None) -> tuple[dict, np.ndarray]:
    """Fits and evaluates as described in the module docstring.

    Args:
      args: the parsed flags.
      fit_options: passed to `inference.fit` (checkpoints: `models.cli.checkpoint_options`).

    Returns:
      `(metrics, trace)`: the metrics dict written to `metrics.json`, and the SVI bound per token
      (`[epochs]`, nats), the SGVB ELBO (`[epochs]`, nats, each the mean of the epoch's minibatch
      estimates) or the LNTM's training log-likelihood per word (`[epochs]`, nats).

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
    key_fit, key_ais = jax.random.split(jax.random.key(args.seed))
    start = time.perf_counter()
    fit = {"svi": _fit_svi, "sgvb": _fit_sgvb, "lntm": _fit_lntm}[args.method]
    topics, infers, trace, extra, state = fit(args, key_fit, counts[train_index], counts.shape[1],
                                              fit_options or {})
    seconds = time.perf_counter() - start
    metrics = {name: lda_model.document_completion_perplexity(infer, topics, observed, held_out)
               for name, infer in infers.items()}
    metrics |= {"seconds": seconds, "topics": args.topics, "method": args.method,
                "n_train_docs": len(train_index), "n_test_docs": len(test_index), **extra}
    if state is not None:
        metrics.update(_ais_metrics(args, key_ais, state, counts[test_index]))
    metrics["top_words"] = top_words(topics, data.vocab)
    if not args.no_sklearn:
        metrics["sklearn_perplexity"], metrics["sklearn_seconds"] = sklearn_perplexity(
            counts[train_index], observed, held_out, args.topics, args.seed)
    return metrics, trace


def _plot_trace(path, trace, method):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(trace, lw=1.0)
    ax.set_xlabel({"svi": "SVI epoch", "sgvb": "SGVB epoch"}.get(method, "EM epoch"))
    ax.set_ylabel({"svi": "mean minibatch bound per token (nats)", "sgvb": "mean minibatch ELBO (nats)"}
                  .get(method, "train log-likelihood per word"))
    ax.set_ylim(np.percentile(trace, 2), trace.max() + 0.02 * abs(trace.max()))
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Runs the `lda` command."""
    out = cli.output_dir(args)
    metrics, trace = run(args, cli.checkpoint_options(args, out))
    lines = [f"topic {k}: {' '.join(words)}" for k, words in enumerate(metrics["top_words"])]
    print("\n".join(lines))
    cli.atomic_write_text(out / "top_words.txt", "\n".join(lines) + "\n")
    _plot_trace(out / "trace.png", trace, args.method)
    sk = metrics.get("sklearn_perplexity")
    if "ais_perplexity" in metrics:
        print(f"AIS test log-likelihood: {metrics['ais_log_likelihood']:.4f} nats/word "
              f"(perplexity {metrics['ais_perplexity']:.1f})")
    print(f"held-out perplexity: {metrics['perplexity']:.1f} (ours, {metrics['seconds']:.0f} s)"
          + (f", {sk:.1f} (scikit-learn, {metrics['sklearn_seconds']:.0f} s)" if sk else ""))
    cli.write_metrics(out, metrics)
    return 0
