"""`python -m models lda` end to end on the packaged Reuters corpus, every method, tiny budgets."""

import json
import math

import pytest

from models.__main__ import main

pytest.importorskip("lda", reason="the Reuters corpus comes with the `lda` package")


@pytest.mark.slow
@pytest.mark.parametrize("method, budget", [
    ("svi", ["--epochs", "2"]),
    ("sgvb", ["--steps", "3"]),
    ("lntm", ["--epochs", "2", "--ais-chains", "2", "--ais-temperatures", "3"]),
])
def test_lda_cli_writes_metrics_and_plots(method, budget, tmp_path):
    status = main(["lda", "--method", method, "--topics", "3", "--no-sklearn", "--out", str(tmp_path),
                   *budget])
    assert status == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["topics"] == 3
    # A perplexity is a geometric-mean inverse probability: finite and at least 1, and no model with
    # 3 topics is worse than a uniform draw from a vocabulary many times larger than the corpus' 4258 words.
    assert 1.0 <= metrics["perplexity"] < 10 * 4258
    if method == "lntm":
        assert math.isfinite(metrics["ais_log_likelihood"]) and metrics["ais_log_likelihood"] < 0
        assert metrics["ais_perplexity"] == pytest.approx(math.exp(-metrics["ais_log_likelihood"]), rel=1e-6)
    assert len(metrics["top_words"]) == 3
    assert (tmp_path / "trace.png").stat().st_size > 0
    assert len((tmp_path / "top_words.txt").read_text().splitlines()) == 3
