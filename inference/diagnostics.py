"""MCMC diagnostics: effective sample size, R-hat, a summary table (and `to_arviz`, re-exported).

All functions take samples with the chain and draw axes first, `[n_chains, n_samples, ...]`, and
work on host (numpy) arrays after sampling; trailing axes are diagnosed element by element. Draws
that are not finite, and chains that are stuck (constant), give NaN (R-hat: +inf when the chains
are stuck at different values) rather than a number that looks fine: the estimators' formulas
would otherwise return, e.g., an ESS of M N log10(M N) for four constant chains.

References:
  Geyer, `Practical Markov Chain Monte Carlo <https://doi.org/10.1214/ss/1177011137>`_,
  Statistical Science 1992 (initial monotone sequence estimator);
  Gelman, Carlin, Stern, Dunson, Vehtari and Rubin, Bayesian Data Analysis, 3rd ed., 2013,
  section 11.4-11.5 (split R-hat, multi-chain ESS);
  Stan Reference Manual, `Effective sample size
  <https://mc-stan.org/docs/reference-manual/analysis.html>`_;
  Vehtari, Gelman, Simpson, Carpenter and Bürkner, `Rank-normalization, folding, and localization:
  an improved R-hat for assessing convergence of MCMC <https://arxiv.org/abs/1903.08008>`_, 2021.
"""

from __future__ import annotations

from typing import Any, Mapping, TextIO

import numpy as np
from numpy.typing import ArrayLike

from inference.arviz_export import to_arviz

__all__ = ["autocovariance", "effective_sample_size", "rhat", "summary", "print_summary", "to_arviz"]


def _check_chains(x, name="samples", min_samples=2) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[1] < min_samples:
        raise ValueError(f"{name} must have shape [n_chains, n_samples, ...] with n_samples >= "
                         f"{min_samples}, got {x.shape}")
    return x


def _degenerate(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per trailing element: (any draw not finite, every chain constant, all draws equal).

    A chain is constant when its draws differ by at most 16 units in the last place of its dtype
    (exact equality for integers and booleans): such a chain carries no information about the
    distribution, whatever its autocorrelation estimate says.
    """
    is_float = np.issubdtype(x.dtype, np.floating)
    eps = 16 * np.finfo(x.dtype).eps if is_float else 0.0
    x = x.astype(np.float64)
    is_nonfinite = ~np.all(np.isfinite(x), axis=(0, 1))
    with np.errstate(invalid="ignore"):
        scale = np.max(np.abs(x), axis=1)
        is_chain_constant = np.ptp(x, axis=1) <= eps * scale
        is_all_equal = np.ptp(x.reshape(-1, *x.shape[2:]), axis=0) <= eps * np.max(scale, axis=0)
    return is_nonfinite, np.all(is_chain_constant, axis=0) & ~is_nonfinite, is_all_equal & ~is_nonfinite


def autocovariance(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """Biased autocovariance (divided by n) along `axis`, all lags, by FFT.

    Args:
      x: array with the draws along `axis`.

    Returns:
      Same shape as `x`; lag k sits at index k of `axis`.
    """
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    n = x.shape[-1]
    size = 2 ** int(np.ceil(np.log2(2 * n)))
    centred = x - x.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=size, axis=-1)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=-1)[..., :n] / n
    return np.moveaxis(acov, -1, axis)


def _geyer_ess(x: np.ndarray) -> np.ndarray:
    """Multi-chain ESS of `[n_chains, n, ...]` float64 draws, Stan's estimator, vectorised.

    Autocorrelations are combined across chains (Stan's rho_t), summed in pairs up to the first
    non-positive pair (Geyer's initial positive sequence, with the last pair's even term), made
    monotone, and tau is bounded below by 1 / log10(M N) (so ESS <= M N log10(M N)).
    """
    n_chains, n = x.shape[:2]
    acov = autocovariance(x, axis=1)
    within = np.mean(acov[:, 0], axis=0) * n / (n - 1)         # W, the mean unbiased chain variance
    var_plus = within * (n - 1) / n
    if n_chains > 1:
        var_plus = var_plus + np.var(np.mean(x, axis=1), axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (within - np.mean(acov, axis=0)) / var_plus
    rho[0] = 1.0
    k_max = max(0, -(-(n - 2) // 2) - 1)                         # pairs Stan's loop can examine
    pairs = rho[0:2 * k_max + 1:2] + rho[1:2 * k_max + 2:2]      # P_k = rho_2k + rho_2k+1, k <= k_max
    index = np.arange(k_max + 1).reshape(-1, *([1] * (x.ndim - 2)))
    is_stop = (index >= 1) & (pairs <= 0)
    stop = np.where(np.any(is_stop, axis=0), np.argmax(is_stop, axis=0), k_max)
    monotone = np.minimum.accumulate(pairs, axis=0)
    full = np.sum(np.where(index < stop, monotone, 0.0), axis=0)
    even = np.take_along_axis(rho[0:2 * k_max + 1:2], stop[None], axis=0)[0]
    last = np.take_along_axis(pairs, stop[None], axis=0)[0]
    half = np.where((even > 0) | (last >= 0), even, 0.0)
    tau = np.maximum(-1.0 + 2.0 * full + half, 1.0 / np.log10(n_chains * n))
    return np.where(np.all(np.isfinite(rho), axis=0), n_chains * n / tau, np.nan)


def _split_chains(x: np.ndarray) -> np.ndarray:
    """`[M, N, ...]` -> `[2M, N // 2, ...]`: every chain's first and last halves (a middle draw dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalised draws: normal quantiles of the pooled ranks, (r - 3/8) / (S + 1/4) (Blom 1958)."""
    from scipy import special, stats
    flat = x.reshape(-1, *x.shape[2:])
    ranks = stats.rankdata(flat, method="average", axis=0)
    return special.ndtri((ranks - 0.375) / (flat.shape[0] + 0.25)).reshape(x.shape)


def _gelman_rubin(x: np.ndarray) -> np.ndarray:
    """sqrt(((N - 1) / N W + B / N) / W) for chains `[M, N, ...]`."""
    n = x.shape[1]
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    between = n * np.var(np.mean(x, axis=1), axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(((n - 1) / n * within + between / n) / within)


def _masked(values: np.ndarray, is_nonfinite, is_constant) -> np.ndarray:
    return np.where(is_nonfinite | is_constant, np.nan, values)


_ESS_METHODS = ("standard", "bulk", "tail")


def effective_sample_size(samples: ArrayLike, method: str = "standard") -> np.ndarray:
    """Multi-chain effective sample size (Geyer's initial monotone sequence, as in Stan and ArviZ).

    .. math::
      \\hat\\rho_t = 1 - \\frac{W - \\tfrac1M \\sum_m \\hat\\gamma_{t,m}}{\\widehat{\\mathrm{var}}^+},\\quad
      \\hat\\tau = -1 + 2 \\sum_{k} (\\hat\\rho_{2k} + \\hat\\rho_{2k+1}),\\quad
      \\mathrm{ESS} = M N / \\hat\\tau

    Elements whose draws are not all finite, or whose every chain is constant (stuck: no
    within-chain variation), get NaN: there is no valid estimate. ESS can exceed the number of
    draws only for antithetic chains (negative autocorrelation, e.g. HMC on a near-Gaussian
    target); it is bounded by M N log10(M N), as in Stan.

    Args:
      samples: `[n_chains, n_samples, ...]`, n_samples >= 4.
      method: "standard" (the chains as they are; NumPyro's `effective_sample_size` and ArviZ's
        method "identity"), "bulk" (rank-normalised split chains) or "tail" (the smaller of the
        split-chain ESS of the 5% and 95% quantile indicators), the last two as ArviZ's `ess`.

    Returns:
      ESS, shape `[...]` (the trailing axes), in draws.

    Raises:
      ValueError: fewer than two axes, fewer than 4 draws, or an unknown method.

    References:
      Geyer, `Practical Markov Chain Monte Carlo <https://doi.org/10.1214/ss/1177011137>`_, 1992;
      Vehtari, Gelman, Simpson, Carpenter and Bürkner, `Rank-normalization, folding, and
      localization: an improved R-hat <https://arxiv.org/abs/1903.08008>`_, 2021.
    """
    if method not in _ESS_METHODS:
        raise ValueError(f"method must be one of {_ESS_METHODS}, got {method!r}")
    x = _check_chains(samples, min_samples=4)
    is_nonfinite, is_constant, _ = _degenerate(x)
    x = np.where(np.isfinite(x), x, 0.0).astype(np.float64)
    if method == "standard":
        ess = _geyer_ess(x)
    elif method == "bulk":
        ess = _geyer_ess(_z_scale(_split_chains(x)))
    else:
        ess = np.minimum(*(_geyer_ess(_split_chains(x <= np.quantile(x, q, axis=(0, 1))).astype(np.float64))
                           for q in (0.05, 0.95)))
    return _masked(ess, is_nonfinite, is_constant)


def rhat(samples: ArrayLike, method: str = "split") -> np.ndarray:
    """Potential scale reduction factor: split R-hat, or its rank-normalised version.

    .. math::
      \\hat R = \\sqrt{\\frac{\\tfrac{N-1}{N} W + \\tfrac1N B}{W}}

    with W the mean within-half variance and B / N the variance of the half means. NaN when a draw
    is not finite or when all draws are equal; +inf when every chain is stuck at its own constant.

    Args:
      samples: `[n_chains, n_samples, ...]`, n_samples >= 4.
      method: "split" (each chain cut in two halves; NumPyro's `split_gelman_rubin`) or "rank"
        (the larger of the split R-hats of the rank-normalised draws and of their folded
        distances to the median; ArviZ's default, which also catches chains that differ in scale).

    Returns:
      R-hat, shape `[...]`; near 1 when the chains agree.

    Raises:
      ValueError: fewer than two axes, fewer than 4 draws, or an unknown method.

    References:
      Gelman et al., Bayesian Data Analysis, 3rd ed., 2013, section 11.4; Vehtari et al. 2021 (above).
    """
    if method not in ("split", "rank"):
        raise ValueError(f"method must be 'split' or 'rank', got {method!r}")
    x = _check_chains(samples, min_samples=4)
    is_nonfinite, _, is_all_equal = _degenerate(x)
    split = _split_chains(np.where(np.isfinite(x), x, 0.0).astype(np.float64))
    if method == "split":
        value = _gelman_rubin(split)
    else:
        folded = np.abs(split - np.median(split.reshape(-1, *split.shape[2:]), axis=0))
        value = np.maximum(_gelman_rubin(_z_scale(split)), _gelman_rubin(_z_scale(folded)))
    return _masked(value, is_nonfinite, is_all_equal)


def summary(samples: Mapping[str, Any], prob: float = 0.9) -> dict[str, dict[str, np.ndarray]]:
    """Mean, sd, median, central `prob` interval, ESS and R-hat of each latent.

    Args:
      samples: `{name: [n_chains, n_samples, ...]}`.
      prob: mass of the central interval (quantiles (1-prob)/2 and (1+prob)/2).

    Returns:
      `{name: {"mean", "std", "median", "q_low", "q_high", "n_eff", "r_hat", "ess_bulk",
      "ess_tail", "r_hat_rank"}}`, each of the latent's trailing shape: `n_eff` and `r_hat` are the
      standard ESS and split R-hat (NumPyro's columns), the last three the rank-normalised ones
      (ArviZ's `summary`). NaN marks a latent whose draws are not finite or whose chains are stuck.
    """
    low, high = 50 * (1 - prob), 50 * (1 + prob)
    table = {}
    for name, value in samples.items():
        x = _check_chains(value, name=f"samples[{name!r}]", min_samples=4)
        flat = x.reshape(-1, *x.shape[2:])
        table[name] = {
            "mean": flat.mean(0), "std": flat.std(0), "median": np.median(flat, 0),
            "q_low": np.percentile(flat, low, axis=0), "q_high": np.percentile(flat, high, axis=0),
            "n_eff": effective_sample_size(x), "r_hat": rhat(x),
            "ess_bulk": effective_sample_size(x, "bulk"), "ess_tail": effective_sample_size(x, "tail"),
            "r_hat_rank": rhat(x, "rank"),
        }
    return table


def print_summary(samples: Mapping[str, Any], prob: float = 0.9, n_divergences: ArrayLike | None = None,
                  file: TextIO | None = None) -> str:
    """Prints (and returns) the `summary` table in NumPyro's `print_summary` layout.

    Args:
      samples: `{name: [n_chains, n_samples, ...]}`.
      prob: mass of the central interval.
      n_divergences: optional count (or per-chain counts) to print below the table.
      file: where to print (default stdout).
    """
    table = summary(samples, prob)
    low, high = 50 * (1 - prob), 50 * (1 + prob)
    columns = ["mean", "std", "median", f"{low:.1f}%", f"{high:.1f}%", "n_eff", "r_hat"]
    keys = ["mean", "std", "median", "q_low", "q_high", "n_eff", "r_hat"]
    rows = []
    for name, stats in table.items():
        shape = np.shape(stats["mean"])
        for index in np.ndindex(*shape):
            label = name + (f"[{','.join(map(str, index))}]" if index else "")
            rows.append((label, [float(np.asarray(stats[k])[index]) for k in keys]))
    width = max([len(label) for label, _ in rows] + [10]) + 2
    lines = ["".join([" " * width] + [f"{c:>10}" for c in columns])]
    for label, values in rows:
        cells = [f"{v:>10.2f}" for v in values]
        lines.append(f"{label:>{width}}" + "".join(cells))
    if n_divergences is not None:
        lines += ["", f"Number of divergences: {int(np.sum(n_divergences))}"]
    text = "\n".join(lines)
    print("\n" + text + "\n", file=file)
    return text
