"""Plotting the zoo shares: atomic figure saving, and trace plots and posterior histograms of MCMC samples."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["plot_histograms", "plot_traces", "save_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Saves `fig` to `path` through a temporary file and a rename, so `path` is never half-written.

    Args:
      fig: a matplotlib figure.
      path: the image's path; its suffix picks the format.
      **kwargs: passed to `savefig` (`dpi`, `bbox_inches`, ...).

    Returns:
      `path` as a `Path`.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    try:
        fig.savefig(temporary, **kwargs)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def plot_traces(path: Path, series: dict[str, np.ndarray]) -> Path:
    """One panel per entry, each chain a line. `series[label]` has shape `[n_chains, n_samples]`."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 1.8 * len(series)), sharex=True, squeeze=False)
    for ax, (label, values) in zip(axes[:, 0], series.items(), strict=True):
        for chain in np.asarray(values):
            ax.plot(chain, lw=0.5, alpha=0.8)
        ax.set_ylabel(label)
    axes[-1, 0].set_xlabel("draw (after warmup)")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_histograms(path: Path, series: dict[str, np.ndarray],
                    densities: Sequence[Callable[[np.ndarray], np.ndarray] | None] | None = None) -> Path:
    """Posterior histograms (all chains pooled), with an exact density overlaid where one is given."""
    plt = _pyplot()
    n = len(series)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    densities = list(densities or [None] * n)
    for ax, (label, values), density in zip(axes.ravel()[:n], series.items(), densities, strict=True):
        values = np.ravel(values)
        ax.hist(values, bins=40, density=True, alpha=0.6)
        if density is not None:
            grid = np.linspace(values.min(), values.max(), 200)
            ax.plot(grid, density(grid), "k-", lw=1)
        ax.set_title(label, fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return Path(path)
