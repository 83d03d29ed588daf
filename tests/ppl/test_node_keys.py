"""Node keys: distinct names never share a key, the same key gives the same samples, and adding a
node never changes another node's samples. (The draws-per-name property is also tested in
test_bayesian_net.py.)"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ppl
from ppl import keys

# Found by brute force over short random names (a birthday search among ~10^5 names): crc32, the
# 32-bit hash the keys used to come from, maps both names to the same value.
CRC32_PAIR = ("c792", "e9v2o4")


def test_the_pair_collides_under_crc32():
    assert zlib.crc32(CRC32_PAIR[0].encode()) == zlib.crc32(CRC32_PAIR[1].encode())


def test_crc32_colliding_names_draw_different_samples():
    @jax.jit
    def body(key):
        bn = ppl.BayesianNet(key=key)
        for name in CRC32_PAIR:
            bn.normal(name, jnp.zeros(4), std=1.)
        return [bn[name].value for name in CRC32_PAIR]

    first, second = body(jax.random.key(0))
    assert not np.any(np.asarray(first) == np.asarray(second))
    keys = [jax.random.key_data(ppl.node_key(jax.random.key(0), name)) for name in CRC32_PAIR]
    assert not np.array_equal(keys[0], keys[1])


def test_keys_depend_on_name_and_key_only():
    """Same key and name, same node key; a node's samples do not depend on the other nodes."""
    key = jax.random.key(5)
    np.testing.assert_array_equal(jax.random.key_data(ppl.node_key(key, "z")),
                                  jax.random.key_data(ppl.node_key(key, "z")))

    def draws(names):
        bn = ppl.BayesianNet(key=key)
        for name in names:
            bn.normal(name, jnp.zeros(3), std=1.)
        return bn["z"].value

    np.testing.assert_array_equal(draws(["z"]), draws([*CRC32_PAIR, "w", "z"]))


def test_a_digest_collision_in_one_net_is_an_error(monkeypatch):
    """Distinct names in one net never share a key: a shared digest (impossible in practice with
    64 bits; forced here by using crc32 as the digest) is refused, naming both nodes."""
    def crc32_digest(name):
        return zlib.crc32(name.encode()), 0

    monkeypatch.setattr(keys, "name_digest", crc32_digest)
    bn = ppl.BayesianNet(key=jax.random.key(0))
    bn.normal(CRC32_PAIR[0], 0., std=1.)
    with pytest.raises(ValueError, match=rf"node names '{CRC32_PAIR[0]}' and '{CRC32_PAIR[1]}' have the "
                                         "same 64-bit digest"):
        bn.normal(CRC32_PAIR[1], 0., std=1.)
    with pytest.raises(ValueError, match="same 64-bit digest"):
        bn.deterministic(CRC32_PAIR[1], 1.)
