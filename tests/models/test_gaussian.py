"""End-to-end run of `python -m models gaussian` with small sizes."""

import argparse
import json

import pytest

from models import gaussian


@pytest.mark.slow
@pytest.mark.parametrize("method", ["nuts", "hmc"])
def test_gaussian_end_to_end(tmp_path, method):
    pytest.importorskip("matplotlib")
    parser = argparse.ArgumentParser()
    gaussian.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--dim", "4", "--chains", "4", "--samples", "300",
                              "--warmup", "200", "--method", method])
    assert gaussian.main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # 8 z-scores (4 means, 4 variances) against the exact moments: |z| < 4.5 fails with
    # probability < 8 * 6.8e-6 for a correct sampler.
    assert metrics["max_abs_z"] < 4.5
    assert metrics["max_r_hat"] < 1.1 and metrics["n_divergences"] == 0
    assert (tmp_path / "trace.png").exists() and (tmp_path / "posterior.png").exists()
    assert metrics["config"]["method"] == method
