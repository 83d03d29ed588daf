"""ESS, split R-hat and the summary table against hand-computed and reference values."""

import io

import numpy as np
import pytest

from inference.diagnostics import (
    autocovariance,
    effective_sample_size,
    print_summary,
    rhat,
    summary,
    to_arviz,
)


def ar1(rng, phi, n_chains, n_samples, shape=()):
    """Stationary AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t, unit marginal variance."""
    x = np.empty((n_chains, n_samples, *shape))
    x[:, 0] = rng.normal(size=(n_chains, *shape))
    noise = rng.normal(size=x.shape) * np.sqrt(1 - phi ** 2)
    for t in range(1, n_samples):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def test_autocovariance_matches_direct_sum():
    x = np.random.default_rng(0).normal(size=(2, 50))
    centred = x - x.mean(1, keepdims=True)
    direct = np.stack([np.sum(centred[:, : 50 - k] * centred[:, k:], 1) / 50 for k in range(50)], 1)
    np.testing.assert_allclose(autocovariance(x, axis=1), direct, atol=1e-12)


def test_ess_of_ar1_matches_theory():
    # For AR(1) the integrated autocorrelation time is (1 + phi) / (1 - phi): ESS = M N (1 - phi) / (1 + phi).
    # With 8 x 5000 draws the relative sd of the Geyer estimate is about 5%; 20% is 4 standard deviations.
    rng = np.random.default_rng(1)
    phi = 0.6
    x = ar1(rng, phi, 8, 5000)
    expected = 8 * 5000 * (1 - phi) / (1 + phi)
    assert abs(effective_sample_size(x) / expected - 1) < 0.2
    iid = rng.normal(size=(4, 2000))        # independent draws: ESS ~ M N (same 20% band)
    assert abs(effective_sample_size(iid) / 8000 - 1) < 0.2


def test_ess_and_rhat_against_numpyro():
    # Split R-hat is NumPyro's exactly. ESS follows Stan (and ArviZ), which also counts the even term of
    # the first non-positive autocorrelation pair; NumPyro stops before it. For positively correlated
    # chains that term is a fraction of one autocorrelation, within 1% of the ESS here.
    from numpyro.diagnostics import effective_sample_size as reference_ess
    from numpyro.diagnostics import split_gelman_rubin

    x = ar1(np.random.default_rng(2), 0.8, 4, 600, shape=(3,))
    x[..., 2] += np.arange(4)[:, None] * 0.3             # chains that disagree
    np.testing.assert_allclose(effective_sample_size(x), reference_ess(x), rtol=1e-2)
    np.testing.assert_allclose(rhat(x), split_gelman_rubin(x), rtol=1e-12)


# Sizes where the 5% and 95% quantiles fall between draws: when (M N - 1) q is an integer the quantile is a
# draw, and whether `draw <= quantile` holds depends on the last bit of the interpolation (numpy's and
# ArviZ's mquantiles round differently), which moves the tail ESS of both by a whole indicator.
@pytest.mark.parametrize("phi, n_chains, n_samples",
                         [(0.9, 4, 300), (-0.6, 3, 57), (0.3, 1, 42), (0.0, 2, 4)])
def test_ess_and_rhat_match_arviz_exactly(phi, n_chains, n_samples):
    arviz = pytest.importorskip("arviz")
    from arviz.stats.diagnostics import _ess  # ArviZ's ESS of the chains as given (its method "identity")

    x = ar1(np.random.default_rng(6), phi, n_chains, n_samples, shape=(3,))
    x[..., 1] = np.exp(2 * x[..., 1])                                   # skewed
    x[..., 2] += np.arange(n_chains)[:, None] * 0.3                     # chains that disagree
    data = arviz.from_dict(posterior={"x": x})
    for method in ("bulk", "tail"):
        expected = arviz.ess(data, method=method)["x"].values
        np.testing.assert_allclose(effective_sample_size(x, method), expected, rtol=1e-10)
    np.testing.assert_allclose(effective_sample_size(x), [_ess(x[..., i]) for i in range(3)], rtol=1e-10)
    if n_chains > 1:
        np.testing.assert_allclose(rhat(x, "rank"), arviz.rhat(data, method="rank")["x"].values, rtol=1e-12)


def test_stuck_constant_and_nonfinite_chains_cannot_fool_the_diagnostics():
    rng = np.random.default_rng(7)
    good = rng.normal(size=(4, 400))
    cases = {
        "constant": np.full((4, 400), 1.5),                               # every chain stuck at one value
        "nan": np.where(np.arange(400) == 17, np.nan, good),
        "inf": np.where(np.arange(400) == 3, np.inf, good),
        "one-ulp jitter": np.tile(1 + 2.0**-23 * (np.arange(400) % 2), (4, 1)).astype(np.float32),  # float32
    }
    for name, x in cases.items():
        for method in ("standard", "bulk", "tail"):
            assert np.isnan(effective_sample_size(x, method)), (name, method)
        for method in ("split", "rank"):
            assert np.isnan(rhat(x, method)), (name, method)
    apart = np.repeat(np.arange(4.0)[:, None], 400, axis=1)               # each chain stuck at its own value
    assert np.isnan(effective_sample_size(apart)) and rhat(apart) == np.inf and rhat(apart, "rank") == np.inf
    one_stuck = good.copy()
    one_stuck[3] = 3.0                                                       # three mixing chains, one stuck
    assert rhat(one_stuck) > 1.1 and rhat(one_stuck, "rank") > 1.1
    sticky = np.repeat(rng.normal(size=(4, 8)), 50, axis=1)                 # a new value every 50 draws
    assert effective_sample_size(sticky) < 4 * 8 and effective_sample_size(sticky, "bulk") < 4 * 8
    mixed = np.stack([good, cases["constant"], cases["nan"]], axis=-1)       # elements judged one by one
    ess = effective_sample_size(mixed)
    assert 300 < ess[0] < 3000 and np.isnan(ess[1]) and np.isnan(ess[2])
    assert abs(rhat(mixed)[0] - 1) < 0.02 and np.isnan(rhat(mixed)[1:]).all()


def test_rhat_hand_computed():
    # Two chains of 4 draws -> four half-chains of 2: means m_j, variances s_j^2 (ddof 1).
    x = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 5.0, 7.0]])
    halves = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 3.0], [5.0, 7.0]])
    w = np.mean(np.var(halves, axis=1, ddof=1))
    b = 2 * np.var(halves.mean(1), ddof=1)
    expected = np.sqrt(((2 - 1) / 2 * w + b / 2) / w)
    assert rhat(x) == pytest.approx(expected, rel=1e-12)


def test_rhat_flags_disagreeing_chains_and_accepts_agreeing_ones():
    rng = np.random.default_rng(3)
    good = rng.normal(size=(4, 1000))
    assert abs(rhat(good) - 1) < 0.01      # sd of split R-hat - 1 here is ~0.003
    bad = good + np.arange(4)[:, None]
    assert rhat(bad) > 1.5


def test_rhat_matches_arviz():
    arviz = pytest.importorskip("arviz")
    x = ar1(np.random.default_rng(4), 0.5, 3, 400)
    expected = arviz.rhat(arviz.from_dict(posterior={"x": x}), method="split")["x"].values
    np.testing.assert_allclose(rhat(x), expected, rtol=1e-6)


def test_summary_and_print_summary():
    rng = np.random.default_rng(5)
    samples = {"a": rng.normal(2.0, 1.0, size=(2, 500)), "b": rng.normal(size=(2, 500, 2))}
    table = summary(samples)
    assert set(table["a"]) == {"mean", "std", "median", "q_low", "q_high", "n_eff", "r_hat", "ess_bulk",
                               "ess_tail", "r_hat_rank"}
    assert table["b"]["mean"].shape == (2,)
    assert table["a"]["mean"] == pytest.approx(np.mean(samples["a"]))
    assert table["a"]["q_low"] == pytest.approx(np.percentile(samples["a"], 5))
    out = io.StringIO()
    text = print_summary(samples, n_divergences=[1, 2], file=out)
    assert "n_eff" in text and "r_hat" in text and "b[1]" in text and "Number of divergences: 3" in text
    assert out.getvalue().strip() == text.strip()
    with pytest.raises(ValueError, match="n_samples"):
        effective_sample_size(np.zeros((2, 3)))
    stuck = print_summary({"s": np.ones((2, 50))}, file=io.StringIO())
    assert stuck.splitlines()[1].split()[-2:] == ["nan", "nan"]           # n_eff and r_hat of a stuck chain


def test_to_arviz():
    pytest.importorskip("arviz")
    data = to_arviz({"x": np.zeros((2, 10, 3))})
    assert data.posterior["x"].shape == (2, 10, 3)
