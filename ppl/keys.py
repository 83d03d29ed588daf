"""Node keys: the key a node draws with depends on the net's key and the node's name only.

A 32-bit hash of the name (crc32, as before) lets distinct short names share a key ("c792" and
"e9v2o4" collide); here 64 bits of a BLAKE2b digest are folded in, and `BayesianNet` refuses two
names with the same digest, so distinct names in one net never share a key.
"""

from __future__ import annotations

import functools
import hashlib

import jax

__all__ = ["node_key", "name_digest"]


@functools.lru_cache(maxsize=4096)
def name_digest(name: str) -> tuple[int, int]:
    """Two 32-bit words of the BLAKE2b digest of `name` (64 bits: no collisions in practice)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "big"), int.from_bytes(digest[4:], "big")


def node_key(key: jax.Array, name: str) -> jax.Array:
    """The key a node named `name` draws with: `key` with a 64-bit digest of `name` folded in.

    The key depends on `key` and the name only, so adding a node never changes another node's
    samples, and the same key gives the same samples. Two folds of 32 bits each carry a 64-bit
    BLAKE2b digest of the name (a single 32-bit hash such as crc32 collides for short names, e.g.
    "c792" and "e9v2o4"); a `BayesianNet` also checks that no two of its names share a digest.

    Args:
      key: a JAX PRNG key.
      name: the node's name.

    Returns:
      A new PRNG key.

    Example:
      >>> z = jax.random.normal(node_key(key, "z"), (3,))   # what bn.normal("z", ...) draws from
    """
    high, low = name_digest(name)
    return jax.random.fold_in(jax.random.fold_in(key, high), low)
