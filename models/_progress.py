"""A progress bar for the zoo's loops (tqdm when installed), shared by models and command lines."""

from __future__ import annotations

from typing import Iterable

__all__ = ["progress"]


def progress(iterable: Iterable, **kwargs):
    """A tqdm progress bar over `iterable` (plain iteration when tqdm is not installed).

    Args:
      iterable: what to iterate over.
      **kwargs: tqdm's options (`desc`, `unit`, `disable`, ...).
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core install has no tqdm
        return iterable
    return tqdm(iterable, **kwargs)
