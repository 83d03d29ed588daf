"""`inference.hmc.prng` returns `jax.random`'s draws bit for bit, with fewer compiled kernels.

Every comparison is exact (`np.array_equal`): the module's contract is identity with `jax.random`
for Threefry keys, so that the samplers' draws did not change when they moved to it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inference.hmc import prng

KEYS = {"typed": lambda seed: jax.random.key(seed), "raw": lambda seed: jax.random.PRNGKey(seed)}


def _data(keys):
    return np.asarray(jax.random.key_data(keys) if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
                      else keys)


@pytest.mark.parametrize("kind", KEYS)
@pytest.mark.parametrize("seed", [0, 2 ** 31 + 11])
def test_split_and_fold_in_equal_jax_random_in_and_out_of_jit(kind, seed):
    key = KEYS[kind](seed)
    for num in (1, 2, 3, 17):
        expected = _data(jax.random.split(key, num))
        np.testing.assert_array_equal(_data(prng.split(key, num)), expected)
        np.testing.assert_array_equal(_data(jax.jit(prng.split, static_argnums=1)(key, num)), expected)
        np.testing.assert_array_equal(_data(prng.split_on_host(key, num)), expected)
    first, second = prng.split_on_host(key, 2, unstack=True)
    np.testing.assert_array_equal(_data(second), _data(jax.random.split(key)[1]))
    for data in (0, 1, 12345, 2 ** 31 - 1):
        expected = _data(jax.random.fold_in(key, data))
        np.testing.assert_array_equal(_data(prng.fold_in(key, data)), expected)
        np.testing.assert_array_equal(_data(jax.jit(prng.fold_in)(key, jnp.int32(data))), expected)


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5)])
def test_normal_and_uniform_equal_jax_random_float32_and_float64(shape):
    key = jax.random.key(3)
    for dtype in (jnp.float32,):
        np.testing.assert_array_equal(prng.normal(key, shape, dtype), jax.random.normal(key, shape, dtype))
        np.testing.assert_array_equal(prng.uniform(key, shape, dtype, -2.0, 3.0),
                                      jax.random.uniform(key, shape, dtype, -2.0, 3.0))
    with jax.enable_x64(True):
        for dtype in (jnp.float32, jnp.float64):
            got = jax.jit(prng.normal, static_argnums=(1, 2))(key, shape, dtype)
            assert got.dtype == dtype
            expected = jax.jit(jax.random.normal, static_argnums=(1, 2))(key, shape, dtype)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(prng.uniform(key, shape, dtype),
                                          jax.random.uniform(key, shape, dtype))


def test_vmapped_draws_equal_jax_random():
    keys = jax.random.split(jax.random.key(1), 4)
    np.testing.assert_array_equal(_data(jax.vmap(prng.split)(keys)), _data(jax.vmap(jax.random.split)(keys)))
    np.testing.assert_array_equal(jax.vmap(lambda k: prng.normal(k, (5,)))(keys),
                                  jax.vmap(lambda k: jax.random.normal(k, (5,)))(keys))
    fold = lambda f: jax.vmap(f, in_axes=(0, None))(keys, jnp.int32(9))
    np.testing.assert_array_equal(_data(fold(prng.fold_in)), _data(fold(jax.random.fold_in)))


def test_other_key_implementations_fall_back_to_jax_random():
    key = jax.random.key(0, impl="rbg")
    np.testing.assert_array_equal(_data(prng.split(key, 3)), _data(jax.random.split(key, 3)))
    np.testing.assert_array_equal(_data(prng.split_on_host(key, 3)), _data(jax.random.split(key, 3)))
    np.testing.assert_array_equal(prng.normal(key, (4,)), jax.random.normal(key, (4,)))
    np.testing.assert_array_equal(_data(prng.fold_in(key, 5)), _data(jax.random.fold_in(key, 5)))


def test_the_hash_is_one_fused_loop_not_a_while():
    # the reason for the module: JAX's CPU threefry is a rolled `while`; ours has no loop at all
    hlo = jax.jit(lambda k: prng.normal(k, (31,))).lower(jax.random.key(0)).compile().as_text()
    reference = jax.jit(lambda k: jax.random.normal(k, (31,))).lower(jax.random.key(0)).compile().as_text()
    assert " while(" not in hlo
    assert " while(" in reference   # if JAX stops rolling its loop on CPU, this module can go


def test_threefry2x32_matches_the_published_known_answer():
    # Salmon et al. 2011, Random123 known-answer test for threefry2x32_20 with key and counter all ones
    ones = np.uint32(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        got = prng.threefry2x32(ones, ones, ones, ones)
    assert (int(got[0]), int(got[1])) == (0x1CB996FC, 0xBB002BE7)
    traced = jax.jit(prng.threefry2x32)(*(jnp.uint32(0xFFFFFFFF),) * 4)
    assert (int(traced[0]), int(traced[1])) == (0x1CB996FC, 0xBB002BE7)


def test_edge_inputs_behave_as_in_jax_random():
    key = jax.random.key(8)
    # a negative Python int is refused as jax.random refuses it; one above 2^31 is taken
    with pytest.raises(OverflowError):
        jax.random.fold_in(key, -1)
    with pytest.raises(OverflowError):
        prng.fold_in(key, -1)
    big = 2 ** 31 + 5
    np.testing.assert_array_equal(_data(prng.fold_in(key, big)), _data(jax.random.fold_in(key, big)))
    neg = jnp.int32(-5)   # an int32 array wraps to 2^32 - 5 in both
    np.testing.assert_array_equal(_data(prng.fold_in(key, neg)), _data(jax.random.fold_in(key, neg)))
    # a shape instead of a count, and zero keys
    np.testing.assert_array_equal(_data(prng.split(key, (2, 3))), _data(jax.random.split(key, (2, 3))))
    assert _data(prng.split(key, 0)).shape == (0, 2)
    assert prng.normal(key, (0, 3)).shape == (0, 3)
