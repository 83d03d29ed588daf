"""Gaussian processes: covariance functions (`kernels`), the exact GP (`exact`), the sparse
variational GP (`svgp`) and the `gp` command (`cli`)."""

__all__: list[str] = []
