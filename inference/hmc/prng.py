"""The samplers' random numbers: `jax.random`'s Threefry draws, bit for bit, in fewer compiled kernels.

On CPU, JAX lowers every Threefry-2x32 hash (each `split`, `fold_in`, `normal`, `uniform`) to a
rolled five-iteration `while` loop, which XLA compiles into half a dozen kernels per call site. A
HMC or NUTS program hashes at a dozen sites (the chains' keys, the momentum, the warmup's step-size
search), so these loops were a third of the LLVM time of NUTS's sampling program on Bayesian
logistic regression (`benchmarks/README.md`, compile time). Here the 20 rounds are written out as
straight-line integer arithmetic, which XLA fuses into one elementwise kernel per site.

The functions return exactly what `jax.random`'s functions of the same names return (tested bit
for bit) when the key is a Threefry key and `jax_threefry_partitionable` is on (JAX's default);
for any other key implementation or setting they call `jax.random`. Keys may be typed
(`jax.random.key`) or raw `uint32[2]` (`jax.random.PRNGKey`); the output has the input's kind.

`split_on_host` computes the same keys with NumPy, for the drivers' Python code: an eager
`jax.random.split` compiles a small program per shape on first use (0.1-0.2 s on CPU).

References:
  Salmon, Moraes, Dror and Shaw, `Parallel random numbers: as easy as 1, 2, 3
  <https://doi.org/10.1145/2063384.2063405>`_, SC 2011 (Threefry);
  JAX, `jax._src.random.threefry2x32` (the counter layout of `split`, `fold_in` and random bits
  with `jax_threefry_partitionable`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike

__all__ = ["fold_in", "normal", "split", "split_on_host", "threefry2x32", "uniform"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def threefry2x32(k0: ArrayLike, k1: ArrayLike, x0: ArrayLike, x1: ArrayLike) -> tuple[Any, Any]:
    """Threefry-2x32 with 20 rounds: the two output words of the block `(x0, x1)` under key `(k0, k1)`.

    Works on `jax.Array`s (traced or not; written in `lax` operations, which trace in about half
    the time of `jax.numpy`'s) and on NumPy arrays (when all four are NumPy) alike; uint32, with
    scalars broadcast; the arithmetic wraps modulo 2^32.

    Args:
      k0, k1: the key's two uint32 words.
      x0, x1: the counter block's two uint32 words.

    Returns:
      `(y0, y1)`, uint32 arrays of the broadcast shape.

    References:
      Salmon et al. 2011 (see the module docstring); the round and key-schedule layout is that of
      JAX's `threefry2x32_p` lowering.
    """
    if all(isinstance(v, (np.ndarray, np.generic)) for v in (k0, k1, x0, x1)):
        return _rounds(k0, k1, x0, x1, np)
    return _rounds_lax(*(jnp.asarray(v, jnp.uint32) for v in (k0, k1, x0, x1)))


def _rounds(k0, k1, x0, x1, xp):
    """The 20 rounds with NumPy's ufuncs (`xp = np`) or `lax`'s operations."""
    if xp is np:
        add, xor, orr, shl, shr = np.add, np.bitwise_xor, np.bitwise_or, np.left_shift, np.right_shift
    else:
        add, xor, orr = lax.add, lax.bitwise_xor, lax.bitwise_or
        shl, shr = lax.shift_left, lax.shift_right_logical
    u32 = np.uint32
    keys = (k0, k1, xor(xor(k0, k1), u32(_PARITY)))
    x0, x1 = add(x0, keys[0]), add(x1, keys[1])
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = add(x0, x1)
            x1 = xor(orr(shl(x1, u32(r)), shr(x1, u32(32 - r))), x0)
        x0 = add(x0, keys[(i + 1) % 3])
        x1 = add(add(x1, keys[(i + 2) % 3]), u32(i + 1))
    return x0, x1


# jitted: a program that hashes at many sites traces the rounds once per shape
_rounds_lax = jax.jit(functools.partial(_rounds, xp=lax))


def _key_words(key):
    """`(words [2] uint32, rewrap)` for one Threefry key on the fast path, else None."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jax.dtypes.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
        impl = jax.random.key_impl(key)
        if str(impl) != "threefry2x32" or jnp.ndim(key) != 0:
            return None
        return jax.random.key_data(key), lambda data: jax.random.wrap_key_data(data, impl=impl)
    if jnp.shape(key) != (2,) or jnp.result_type(key) != jnp.uint32 or str(jax.random.key_impl(key)) != (
            "threefry2x32"):
        return None
    return jnp.asarray(key), lambda data: data


# The fast paths are jitted (shapes and dtypes static), as `jax.random`'s are: a program that draws
# at many sites traces each kind of draw once, not the 20 rounds at every site.

def _hash_counters(words, shape):
    """Both words of the hash of each element's flat index (JAX's `iota_2x32_shape` counters)."""
    size = math.prod(shape)
    if size > 2 ** 32:   # pragma: no cover - larger than any array a sampler draws
        raise NotImplementedError("more than 2^32 draws from one key")
    low = lax.iota(jnp.uint32, size).reshape(shape) if size else jnp.zeros(shape, jnp.uint32)
    return _rounds(words[0], words[1], jnp.zeros(shape, jnp.uint32), low, lax)


@functools.partial(jax.jit, static_argnums=1)
def _split_words(words, num):
    return jnp.stack(_hash_counters(words, (num,)), axis=-1)


@jax.jit
def _fold_in_words(words, data):
    return jnp.stack(_rounds(words[0], words[1], jnp.zeros((), jnp.uint32), data.astype(jnp.uint32), lax))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _uniform_words(words, shape, dtype, minval, maxval):
    finfo = jnp.finfo(dtype)
    uint = jnp.uint64 if finfo.bits == 64 else jnp.uint32
    y0, y1 = _hash_counters(words, shape)
    bits = (y0.astype(uint) << uint(32)) | y1.astype(uint) if finfo.bits == 64 else y0 ^ y1
    one = np.array(1.0, dtype).view(uint)   # [1, 2): random mantissa bits under the exponent of 1
    floats = lax.bitcast_convert_type((bits >> uint(finfo.bits - finfo.nmant)) | one, dtype)
    floats = floats - jnp.array(1.0, dtype)
    minval = lax.broadcast_to_rank(lax.convert_element_type(minval, dtype), len(shape))
    maxval = lax.broadcast_to_rank(lax.convert_element_type(maxval, dtype), len(shape))
    return lax.max(minval, floats * (maxval - minval) + minval)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _normal_words(words, shape, dtype):
    low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = _uniform_words(words, shape, dtype, low, np.array(1.0, dtype))
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(u))


def split(key: jax.Array, num: int = 2) -> jax.Array:
    """`jax.random.split(key, num)`, bit for bit (one fused hash on the fast path).

    Args:
      key: one PRNG key (typed `[]` or raw `uint32[2]`).
      num: the number of keys, an int (a shape tuple goes through `jax.random.split`).

    Returns:
      `num` keys, `[num]` typed or `[num, 2]` raw, like `key`.

    Raises:
      Whatever `jax.random.split` raises for a negative `num` or a batch of keys (it is called for
      them).
    """
    fast = _key_words(key)
    if fast is None or not isinstance(num, (int, np.integer)) or isinstance(num, bool) or num < 0:
        return jax.random.split(key, num)
    words, rewrap = fast
    return rewrap(_split_words(words, int(num)))


def fold_in(key: jax.Array, data: ArrayLike) -> jax.Array:
    """`jax.random.fold_in(key, data)`, bit for bit, for a 32-bit integer `data` (`[]`, traced or not).

    Args:
      key: one PRNG key (typed `[]` or raw `uint32[2]`).
      data: an integer scalar: an array of at most 32 bits, or a Python int in [0, 2^32).

    Returns:
      A key like `key`.

    Raises:
      Whatever `jax.random.fold_in` raises for other data (it is called for them), e.g.
      `OverflowError` for a negative Python int.
    """
    fast = _key_words(key)
    if isinstance(data, int) and not isinstance(data, bool):
        data = np.uint32(data) if 0 <= data < 2 ** 32 else data   # Python ints as jax.random takes them
    if (fast is None or isinstance(data, (int, float)) or jnp.ndim(data)
            or not jnp.issubdtype(jnp.result_type(data), jnp.integer)
            or jnp.iinfo(jnp.result_type(data)).bits > 32):
        return jax.random.fold_in(key, data)
    words, rewrap = fast
    return rewrap(_fold_in_words(words, jnp.asarray(data)))


def uniform(key: jax.Array, shape: tuple[int, ...] = (), dtype: DTypeLike = float, minval: ArrayLike = 0.0,
            maxval: ArrayLike = 1.0) -> jax.Array:
    """`jax.random.uniform(key, shape, dtype, minval, maxval)`, bit for bit (32- and 64-bit floats).

    Args:
      key: one PRNG key.
      shape: the output shape.
      dtype: float32 or float64 (others go through `jax.random.uniform`).
      minval, maxval: the interval [minval, maxval), scalars or broadcastable to `shape`.

    Returns:
      An array of `shape` and `dtype`.
    """
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    fast = _key_words(key)
    if fast is None or dtype not in (jnp.float32, jnp.float64):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform_words(fast[0], tuple(shape), dtype, minval, maxval)


def normal(key: jax.Array, shape: tuple[int, ...] = (), dtype: DTypeLike = float) -> jax.Array:
    """`jax.random.normal(key, shape, dtype)`, bit for bit (32- and 64-bit floats): `sqrt(2) erfinv(u)`.

    Args:
      key: one PRNG key.
      shape: the output shape.
      dtype: float32 or float64 (others go through `jax.random.normal`).

    Returns:
      Standard normal draws, an array of `shape` and `dtype`.
    """
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    fast = _key_words(key)
    if fast is None or dtype not in (jnp.float32, jnp.float64):
        return jax.random.normal(key, shape, dtype)
    return _normal_words(fast[0], tuple(shape), dtype)


def split_on_host(key: jax.Array, num: int = 2, unstack: bool = False) -> jax.Array | tuple[jax.Array, ...]:
    """`jax.random.split(key, num)` computed with NumPy: no program is compiled for it.

    For a concrete key in the drivers' Python code (the first eager `jax.random.split` of each
    shape compiles a program, and unpacking its result another). Tracers, and keys off the fast
    path, go through `jax.random.split`.

    Args:
      key: one concrete PRNG key (typed `[]` or raw `uint32[2]`).
      num: the number of keys.
      unstack: return a tuple of `num` single keys instead of one array of them.

    Returns:
      `num` keys, the same as `jax.random.split`'s (`[num]` typed or `[num, 2]` raw), or with
      `unstack` a tuple of them.
    """
    fast = _key_words(key)
    if fast is None or isinstance(key, jax.core.Tracer):
        keys = jax.random.split(key, num)
        return tuple(keys) if unstack else keys
    words, rewrap = fast
    words = np.asarray(words, np.uint32)
    with np.errstate(over="ignore"):
        y0, y1 = threefry2x32(words[0], words[1], np.zeros(num, np.uint32), np.arange(num, dtype=np.uint32))
    data = np.stack([y0, y1], axis=-1)
    if unstack:
        return tuple(rewrap(jnp.asarray(row)) for row in data)
    return rewrap(jnp.asarray(data))
