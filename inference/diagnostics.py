"""MCMC diagnostics: effective sample size, split R-hat, a summary table, export to ArviZ.

All functions take samples with the chain and draw axes first, `[n_chains, n_samples, ...]`, and
work on host (numpy) arrays after sampling; trailing axes are diagnosed element by element.

References:
  Geyer, `Practical Markov Chain Monte Carlo <https://doi.org/10.1214/ss/1177011137>`_,
  Statistical Science 1992 (initial monotone sequence estimator);
  Gelman, Carlin, Stern, Dunson, Vehtari and Rubin, Bayesian Data Analysis, 3rd ed., 2013,
  section 11.4-11.5 (split R-hat, multi-chain ESS);
  Stan Reference Manual, `Effective sample size
  <https://mc-stan.org/docs/reference-manual/analysis.html>`_.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["autocovariance", "effective_sample_size", "rhat", "summary", "print_summary", "to_arviz"]


def _check_chains(x, name="samples", min_samples=2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[1] < min_samples:
        raise ValueError(f"{name} must have shape [n_chains, n_samples, ...] with n_samples >= "
                         f"{min_samples}, got {x.shape}")
    return x


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


def effective_sample_size(samples) -> np.ndarray:
    """Multi-chain effective sample size with Geyer's initial monotone sequence.

    .. math::
      \\hat\\rho_t = 1 - \\frac{W - \\tfrac1M \\sum_m \\hat\\gamma_{t,m}}{\\widehat{\\mathrm{var}}^+},\\quad
      \\hat\\tau = -1 + 2 \\sum_{k} (\\hat\\rho_{2k} + \\hat\\rho_{2k+1}),\\quad
      \\mathrm{ESS} = M N / \\hat\\tau

    where the paired sums are cut at the first negative one and made monotone (Geyer 1992).

    Args:
      samples: `[n_chains, n_samples, ...]`, n_samples >= 4.

    Returns:
      ESS, shape `[...]` (the trailing axes), in draws.

    Raises:
      ValueError: fewer than two axes or fewer than 4 draws.
    """
    x = _check_chains(samples, min_samples=4)
    n_chains, n = x.shape[:2]
    acov = autocovariance(x, axis=1)
    within = np.mean(acov[:, 0], axis=0) * n / (n - 1)      # W: mean of the chains' unbiased variances
    var_plus = within * (n - 1) / n
    if n_chains > 1:
        var_plus = var_plus + np.var(np.mean(x, axis=1), axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (within - np.mean(acov, axis=0)) / var_plus
    rho[0] = 1.0
    n_pairs = n // 2
    pairs = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]
    is_positive = np.cumprod(pairs > 0, axis=0).astype(bool)   # initial positive sequence
    pairs = np.where(is_positive, pairs, 0.0)
    pairs = np.minimum.accumulate(pairs, axis=0)               # initial monotone sequence
    tau = -1.0 + 2.0 * np.sum(pairs, axis=0)
    tau = np.maximum(tau, 1.0 / np.log10(n_chains * n))       # as Stan: ESS <= M N log10(M N)
    return np.where(np.isfinite(tau), n_chains * n / tau, np.nan)


def rhat(samples) -> np.ndarray:
    """Split R-hat: each chain cut in two halves, then the potential scale reduction factor.

    .. math::
      \\hat R = \\sqrt{\\frac{\\tfrac{N-1}{N} W + \\tfrac1N B}{W}}

    with W the mean within-half variance and B / N the variance of the half means.

    Args:
      samples: `[n_chains, n_samples, ...]`, n_samples >= 4.

    Returns:
      R-hat, shape `[...]`; near 1 when the chains agree.

    Raises:
      ValueError: fewer than two axes or fewer than 4 draws.
    """
    x = _check_chains(samples, min_samples=4)
    half = x.shape[1] // 2
    x = np.concatenate([x[:, :half], x[:, -half:]], axis=0)
    chain_means = np.mean(x, axis=1)
    within = np.mean(np.var(x, axis=1, ddof=1), axis=0)
    between = half * np.var(chain_means, axis=0, ddof=1)
    var_plus = (half - 1) / half * within + between / half
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(var_plus / within)


def summary(samples: Mapping[str, Any], prob: float = 0.9) -> dict[str, dict[str, np.ndarray]]:
    """Mean, sd, median, central `prob` interval, ESS and split R-hat of each latent.

    Args:
      samples: `{name: [n_chains, n_samples, ...]}`.
      prob: mass of the central interval (quantiles (1-prob)/2 and (1+prob)/2).

    Returns:
      `{name: {"mean", "std", "median", "q_low", "q_high", "n_eff", "r_hat"}}`, each of the
      latent's trailing shape.
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
        }
    return table


def print_summary(samples: Mapping[str, Any], prob: float = 0.9, n_divergences=None, file=None) -> str:
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


def to_arviz(samples: Mapping[str, Any], info=None):
    """Converts samples (and an `HMCSampleInfo`) to an ArviZ `InferenceData`.

    Args:
      samples: `{name: [n_chains, n_samples, ...]}`.
      info: optional `inference.hmc.HMCSampleInfo`; its per-draw fields become `sample_stats`
        (`acceptance_rate`, `diverging`, `energy`, `lp`).

    Returns:
      `arviz.InferenceData` with a `posterior` group.

    Raises:
      ImportError: ArviZ is not installed (`pip install arviz`, an optional dependency).
    """
    try:
        import arviz
    except ImportError as error:
        raise ImportError("to_arviz needs ArviZ, an optional dependency: pip install arviz") from error
    posterior = {name: np.asarray(value) for name, value in samples.items()}
    sample_stats = None
    if info is not None:
        sample_stats = {"acceptance_rate": np.asarray(info.acceptance_rate),
                        "diverging": np.asarray(info.is_divergent), "energy": np.asarray(info.energy),
                        "lp": np.asarray(info.log_joint)}
    return arviz.from_dict(posterior=posterior, sample_stats=sample_stats)
