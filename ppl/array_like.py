"""`ArrayLike`: objects that stand for one array, as ZhuSuan's `TensorArithmeticMixin` made them.

ZhuSuan's stochastic tensors (`StochasticTensor`) and variational objectives are tensors: they go
into any TensorFlow operation and support Python arithmetic. Here the same holds for JAX. A subclass
says which array it stands for (`_as_array`); the mixin then gives it

* `__jax_array__` (`jnp.asarray(x)`, `jnp.mean(x)`, `jax.nn.softmax(x)`, ... accept it);
* registration as a pytree whose single leaf is that array, so it can be passed into `jax.jit`,
  `jax.grad` or any `jnp` function that is itself jitted; *unflattening gives the plain array* (a
  jitted function receives, and returns, the value, not the record);
* arithmetic and comparison operators, indexing, iteration over the leading axis, `abs`, `-x`;
* `float(x)`, `int(x)`, `bool(x)` for size-1 values (as for `jax.Array`), and `np.asarray(x)`;
* `.tensor` (ZhuSuan's name for the value), `.shape`, `.dtype`, `.ndim`, `.size`.

Equality (`==`) and hashing stay identity-based, as in ZhuSuan, so records can be dictionary keys;
compare values with `x.tensor == y`.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ArrayLike"]


def _binary(op, reflected: bool):
    def method(self, other):
        if isinstance(other, ArrayLike):
            other = other._as_array()
        value = self._as_array()
        return op(other, value) if reflected else op(value, other)
    return method


def _unary(op):
    def method(self):
        return op(self._as_array())
    return method


_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
           "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
           "matmul": operator.matmul, "and": operator.and_, "or": operator.or_, "xor": operator.xor}
_COMPARISONS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
_UNARY = {"neg": operator.neg, "pos": operator.pos, "abs": operator.abs, "invert": operator.invert}


class ArrayLike:
    """Mixin for records that stand for one array (see the module docstring).

    Subclasses implement `_as_array() -> jax.Array`; everything else follows. Every subclass is
    registered as a pytree automatically.

    Example:
      >>> bn = ppl.BayesianNet(key=jax.random.key(0))
      >>> _ = bn.normal("z", jnp.zeros(3), std=1.)
      >>> (2 * bn["z"] + 1).shape, jnp.mean(bn["z"]).shape
      ((3,), ())
    """

    __array_priority__ = 100    # numpy defers to our reflected operators, as for jax.Array
    __hash__ = object.__hash__

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        try:
            jax.tree_util.register_pytree_node(cls, _flatten, _unflatten)
        except ValueError:      # already registered (a class object reused, e.g. on module reload)
            pass

    def _as_array(self) -> jax.Array:
        raise NotImplementedError

    def __jax_array__(self) -> jax.Array:
        return self._as_array()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._as_array(), dtype=dtype)

    @property
    def tensor(self) -> jax.Array:
        """The value this object stands for (ZhuSuan's name)."""
        return self._as_array()

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the value."""
        return tuple(jnp.shape(self._as_array()))

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the value."""
        return jnp.result_type(self._as_array())

    @property
    def ndim(self) -> int:
        """The rank of the value."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements of the value."""
        return int(np.prod(self.shape, dtype=np.int64))

    def __getitem__(self, index):
        return self._as_array()[index]

    def __iter__(self):
        return iter(self._as_array())

    def __float__(self):
        return float(self._as_array())

    def __int__(self):
        return int(self._as_array())

    def __bool__(self):
        return bool(self._as_array())


for _name, _op in _BINARY.items():
    setattr(ArrayLike, f"__{_name}__", _binary(_op, reflected=False))
    setattr(ArrayLike, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in _COMPARISONS.items():
    setattr(ArrayLike, f"__{_name}__", _binary(_op, reflected=False))
for _name, _unary_op in _UNARY.items():
    setattr(ArrayLike, f"__{_name}__", _unary(_unary_op))
del _name, _op, _unary_op


def _flatten(obj: ArrayLike):
    return (obj._as_array(),), None


def _unflatten(aux, children):
    del aux
    return children[0]
