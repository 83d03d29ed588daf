"""Compile once: the program cache that every MCMC driver shares (HMC, NUTS, ChEES, AIS, SG-MCMC).

A jitted run is reused when the next call would trace to the same program. What determines the
program is split from what only feeds it:

- **traced** (arguments of the compiled program): every array leaf of the model builder's
  arguments, the observations, initial positions, step sizes, mass matrices and resume states;
- **static** (part of the cache key): the builder function, the non-array leaves of its arguments
  (ints, strings, tuples, functions, ...), the shapes, dtypes and weak types of every array
  input, the sampler's configuration and the run's sizes (`n_samples`, `n_warmup`, `thinning`,
  `n_chains`, ...).

Functions enter the key by what they compute, not by object identity: a lambda or closure that is
re-created on every call (a `model.log_joint` override, a `model_fn` built inside a helper) has the
same code, defaults and closure contents, hence the same key. Objects without a value-based hash
enter by identity, and the key holds a reference to them so an identity is never reused while
the entry lives. The cache is a bounded LRU (`PROGRAMS`, 32 programs), so memory does not grow
with the number of calls.

Example:
  >>> arrays, static = split_static(((x, 1.0), {"y": y}))
  >>> program = PROGRAMS.get(("my-run", static.key), lambda: jax.jit(run))
  >>> program(arrays)   # traced with x and y as arguments, 1.0 baked in
"""

from __future__ import annotations

import functools
import threading
import types
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, NamedTuple

import jax
import numpy as np

__all__ = ["PROGRAMS", "CompileCache", "Static", "is_array", "rebuild", "split_static", "static_key"]

_MAX_DEPTH = 8   # closures of closures: beyond this depth objects enter the key by identity


class _ByIdentity:
    """A hashable stand-in for an object without a value-based hash (keeps the object alive)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _ByIdentity) and other.obj is self.obj

    def __repr__(self):
        return f"<by identity: {type(self.obj).__name__}>"


class _ArrayLeaf:
    """Marks where an array sits among the static leaves."""

    __repr__ = lambda self: "<array>"   # noqa: E731


_ARRAY = _ArrayLeaf()


def is_array(x: Any) -> bool:
    """Whether `x` is traced as an array argument: a `jax.Array` (tracers included) or `np.ndarray`.

    NumPy scalars (`np.float32(1.)`) and Python numbers are static: they are usually settings.
    """
    return isinstance(x, (jax.Array, np.ndarray))


def static_key(obj: Any, _depth: int = 0) -> Hashable:
    """A hashable key for a non-array object that equals another's when both behave the same.

    Numbers, strings, None and nested tuples/lists/dicts of them compare by value; functions by
    code, defaults and closure contents (recursively); `functools.partial` and bound methods by
    their parts; arrays and other objects without a value-based hash by identity.

    Args:
      obj: any Python object.

    Returns:
      A hashable value.
    """
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, type)):
        return (type(obj), obj)
    if _depth > _MAX_DEPTH:
        return _ByIdentity(obj)
    recurse = functools.partial(static_key, _depth=_depth + 1)
    if isinstance(obj, np.generic):
        return (type(obj), obj.tobytes())
    if isinstance(obj, (tuple, list)):
        return (type(obj), tuple(recurse(x) for x in obj))
    if isinstance(obj, dict):
        return (type(obj), tuple((recurse(k), recurse(v)) for k, v in obj.items()))
    if isinstance(obj, functools.partial):
        return (functools.partial, recurse(obj.func), recurse(obj.args), recurse(obj.keywords))
    if isinstance(obj, types.MethodType):
        return (types.MethodType, recurse(obj.__func__), recurse(obj.__self__))
    if isinstance(obj, types.FunctionType):
        cells = tuple(recurse(_cell_contents(cell)) for cell in obj.__closure__ or ())
        return (types.FunctionType, obj.__code__, id(obj.__globals__), recurse(obj.__defaults__),
                recurse(obj.__kwdefaults__), cells)
    if is_array(obj) or type(obj).__hash__ is object.__hash__:
        return _ByIdentity(obj)
    try:
        hash(obj)
    except TypeError:
        return _ByIdentity(obj)
    return (type(obj), obj)


_EMPTY_CELL = ("<empty cell>",)


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:   # a cell not yet assigned (a recursive inner function)
        return _EMPTY_CELL


class Static(NamedTuple):
    """The static part of a pytree: its structure, its non-array leaves, and the cache key.

    Attributes:
      treedef: the pytree structure.
      leaves: the leaves, with a placeholder where an array goes.
      key: hashable: the structure, `static_key` of each non-array leaf and the abstract value
        (shape, dtype, weak type) of each array leaf.
    """

    treedef: Any
    leaves: tuple
    key: Hashable


def split_static(tree: Any, trace_arrays: bool = True) -> tuple[list, Static]:
    """Splits a pytree into its array leaves (to trace) and the rest (to key the cache on).

    Args:
      tree: any pytree (model builder arguments, observations, ...).
      trace_arrays: when False, arrays are kept static too (keyed by identity): for builders that
        need their array arguments concretely (NumPy calls on them).

    Returns:
      `(arrays, static)`: the array leaves in order, and a `Static` to `rebuild` the tree from
      (possibly traced) arrays.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    arrays, statics, keys = [], [], []
    for leaf in leaves:
        if trace_arrays and is_array(leaf):
            arrays.append(leaf)
            statics.append(_ARRAY)
            keys.append(jax.typeof(leaf))
        else:
            statics.append(leaf)
            keys.append(static_key(leaf))
    return arrays, Static(treedef, tuple(statics), (treedef, tuple(keys)))


def rebuild(static: Static, arrays: Iterable[Any]) -> Any:
    """The pytree `split_static` split, with `arrays` (e.g. tracers) in the array slots."""
    arrays = iter(arrays)
    leaves = [next(arrays) if leaf is _ARRAY else leaf for leaf in static.leaves]
    return jax.tree_util.tree_unflatten(static.treedef, leaves)


class CompileCache:
    """A bounded LRU of compiled programs (jitted functions), keyed by what determines them.

    Args:
      maxsize: programs kept; the least recently used is dropped beyond it (with its executable).

    Attributes:
      n_builds: programs built (cache misses) since creation or `clear`.
      n_hits: lookups answered from the cache.
    """

    def __init__(self, maxsize: int = 32):
        self.maxsize = int(maxsize)
        self._programs: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.n_builds = 0
        self.n_hits = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The program for `key`, built by `build()` on a miss.

        Args:
          key: hashable; see the module docstring for what belongs in it.
          build: `() -> program`, called once per key (while the entry lives).

        Returns:
          The program.
        """
        with self._lock:
            if key in self._programs:
                self._programs.move_to_end(key)
                self.n_hits += 1
                return self._programs[key]
        program = build()
        with self._lock:
            self._programs[key] = program
            self.n_builds += 1
            while len(self._programs) > self.maxsize:
                self._programs.popitem(last=False)
        return program

    def discard(self, key: Hashable) -> None:
        """Drops `key`'s program (e.g. after its first trace failed)."""
        with self._lock:
            self._programs.pop(key, None)

    def clear(self) -> None:
        """Drops every program and resets the counters."""
        with self._lock:
            self._programs.clear()
            self.n_builds = self.n_hits = 0

    def __len__(self) -> int:
        return len(self._programs)


PROGRAMS = CompileCache(maxsize=32)
