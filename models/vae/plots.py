"""Pictures for the VAE: generated digits, reconstructions and the ELBO curve, saved as PNGs.

matplotlib (an optional dependency, `pip install ppl-jax[examples]`) is imported when a picture
is drawn, with the non-interactive Agg backend.
"""

from __future__ import annotations

import math

import numpy as np

from models.plots import save_figure

__all__ = ["image_grid", "plot_elbo", "plot_reconstructions", "plot_samples"]


def image_grid(images: np.ndarray, n_cols: int) -> np.ndarray:
    """Tiles `[n, 784]` images into one picture, `n_cols` 28x28 digits per row with 2-pixel gaps."""
    n_rows = math.ceil(len(images) / n_cols)
    grid = np.ones((n_rows * 30 + 2, n_cols * 30 + 2), np.float32)
    for i, image in enumerate(np.asarray(images).reshape(-1, 28, 28)):
        row, col = divmod(i, n_cols)
        grid[2 + 30 * row: 30 * (row + 1), 2 + 30 * col: 30 * (col + 1)] = image
    return grid


def _save_grid(path, grid: np.ndarray, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(grid.shape[1] / 50, grid.shape[0] / 50 + 0.4), dpi=100)
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)


def plot_samples(path, x_mean: np.ndarray) -> None:
    """Saves a 10-column grid of generated digits (pixel probabilities `[n, 784]`) as a PNG."""
    _save_grid(path, image_grid(x_mean, 10), "VAE samples: x_mean for z ~ p(z)")


def plot_reconstructions(path, x: np.ndarray, x_mean: np.ndarray) -> None:
    """Saves test digits `x` `[n, 784]` (odd rows) above their reconstructions (even rows)."""
    rows = []
    for start in range(0, len(x), 10):
        rows += [x[start: start + 10], x_mean[start: start + 10]]
    _save_grid(path, image_grid(np.concatenate(rows), 10),
               "test digits (rows 1, 3, ...) and their reconstructions (rows 2, 4, ...)")


def plot_elbo(path, train_elbo: np.ndarray, test_elbo: np.ndarray | None) -> None:
    """Saves the per-epoch training (and test) ELBO curve as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = np.arange(1, len(train_elbo) + 1)
    ax.plot(epochs, train_elbo, label="train (minibatch mean)")
    if test_elbo is not None:
        ax.plot(epochs, test_elbo, label="test (1 sample per digit)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per digit)")
    ax.legend()
    save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)
