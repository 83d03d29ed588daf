"""ZhuSuan's distribution classes, by ZhuSuan's names and parameters, over numpyro distributions.

`ppl.distributions.Normal(mean, std=..., group_ndims=1)` is ZhuSuan's
`zs.distributions.Normal(mean, std=..., group_ndims=1)`: a distribution object with `group_ndims`,
`is_reparameterized`, `use_path_derivative` and (for discrete ones) `dtype`, whose
`sample(key, n_samples)` and `log_prob(given)` follow ZhuSuan's semantics (`n_samples=None` adds no
axis, an int a new leading axis; `log_prob` sums the last `group_ndims` batch axes). There is one
class per entry of the node table `ppl.nodes.NODE_TABLE`, generated from it (`Normal`, `FoldNormal`,
`Bernoulli`, `Categorical`, `OnehotCategorical`, `Uniform`, `Gamma`, `Beta`, `Poisson`, `Binomial`,
`Multinomial`, `UnnormalizedMultinomial`, `Dirichlet`, `InverseGamma`, `Laplace`, `BinConcrete`,
`ExpConcrete`, `Concrete`, `MultivariateNormalCholesky`, `MatrixVariateNormalCholesky`), plus
ZhuSuan's alternative names (`Discrete`, `OnehotDiscrete`, `BinGumbelSoftmax`, `ExpGumbelSoftmax`,
`GumbelSoftmax`). Each is usable as `bn.stochastic(name, ppl.distributions.Normal(...))`.

The numpyro distribution underneath is `.distribution`; the numpyro subclasses for what numpyro
lacks live in `ppl.numpyro_extras`. The one difference from ZhuSuan: randomness is explicit, so
`sample` takes a JAX key first.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.typing import DTypeLike

from ppl import numpyro_extras
from ppl.nodes import NODE_TABLE, ZHUSUAN_ALIASES

__all__ = ["Distribution", "log_prob_with_group_ndims", "check_group_ndims", "resolve_reparameterized",
           "check_sample_dtype", "support_values"]


def log_prob_with_group_ndims(distribution: dist.Distribution, value: jax.Array, group_ndims: int,
                              use_path_derivative: bool = False) -> jax.Array:
    """`distribution.log_prob(value)` summed over the last `group_ndims` batch axes.

    With `use_path_derivative`, the distribution's parameters are stopped (gradients reach the
    result only through `value`). A categorical value held as floats (`dtype=float32`) is read as
    integer indices.
    """
    if use_path_derivative:
        distribution = jax.tree_util.tree_map(jax.lax.stop_gradient, distribution)
    if (isinstance(distribution, (dist.CategoricalLogits, dist.CategoricalProbs))
            and not jnp.issubdtype(jnp.result_type(value), jnp.integer)):
        value = jnp.asarray(value).astype(jnp.int32)
    log_prob = distribution.log_prob(value)
    return jnp.sum(log_prob, axis=tuple(range(-group_ndims, 0))) if group_ndims > 0 else log_prob


def check_group_ndims(where: str, distribution: dist.Distribution, group_ndims: Any) -> int:
    """`group_ndims` as an int, or a ValueError naming `where` (a node or a class)."""
    if not isinstance(distribution, dist.Distribution):
        raise TypeError(f"{where}: expected a numpyro Distribution, got {type(distribution).__name__}")
    if not _is_int(group_ndims) or group_ndims < 0:
        raise ValueError(f"{where}: group_ndims must be a non-negative int, got {group_ndims!r}")
    batch_shape = tuple(distribution.batch_shape)
    if group_ndims > len(batch_shape):
        raise ValueError(f"{where}: group_ndims={group_ndims} exceeds the rank of its batch "
                         f"shape {batch_shape}")
    return int(group_ndims)


def resolve_reparameterized(where: str, distribution: dist.Distribution, flag: bool | None) -> bool:
    """`flag`, defaulting to `distribution.has_rsample`; a TypeError if True cannot hold."""
    if flag is None:
        return bool(distribution.has_rsample)
    if flag and not distribution.has_rsample:
        raise TypeError(f"{where}: {type(distribution).__name__} has no reparameterised sampler; use "
                        "is_reparameterized=False (score-function gradients)")
    return bool(flag)


def check_sample_dtype(where: str, distribution: dist.Distribution, dtype: Any) -> np.dtype | None:
    """The numpy dtype samples are cast to, or None; `dtype=` applies to discrete distributions."""
    if dtype is None:
        return None
    if not getattr(distribution.support, "is_discrete", False):
        raise TypeError(f"{where}: dtype= applies to discrete distributions (it casts the samples); "
                        f"{type(distribution).__name__} is continuous and its samples take the "
                        "dtype of its parameters")
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise TypeError(f"{where}: dtype must be an integer or float dtype, got {dtype}")
    return dtype


def support_values(where: str, distribution: dist.Distribution, dtype: Any = None) -> jax.Array:
    """Every value a finite discrete distribution can take, in order, one per leading row.

    Args:
      where: what to name in errors (e.g. "node 'y'").
      distribution: a numpyro distribution with a finite support (`has_enumerate_support`):
        categorical, one-hot categorical, Bernoulli, binomial, ...
      dtype: the dtype to cast the values to (a node's `dtype=`), or None for the distribution's.

    Returns:
      shape `[K, *event_shape]`: the K values (the batch axes are not repeated).

    Raises:
      ValueError: a continuous distribution, or a discrete one whose support is not finite
        (Poisson, geometric, ...) or cannot be listed (a binomial whose `total_count` is traced).

    Example:
      >>> support_values("node 'y'", dist.CategoricalLogits(jnp.zeros([5, 3])))
      Array([0, 1, 2], dtype=int32)
    """
    name = type(distribution).__name__
    if not getattr(distribution.support, "is_discrete", False):
        raise ValueError(f"{where} follows {name}, a continuous distribution: only discrete nodes with "
                         "a finite support (categorical, one-hot categorical, Bernoulli, ...) can be "
                         "enumerated")
    if not distribution.has_enumerate_support:
        raise ValueError(f"{where} follows {name}, whose support is not finite: it cannot be "
                         "enumerated (only nodes with a finite support: categorical, one-hot "
                         "categorical, Bernoulli, binomial, ...)")
    try:
        values = jnp.asarray(distribution.enumerate_support(expand=False))
    except (NotImplementedError, TypeError, ValueError, jax.errors.ConcretizationTypeError) as error:
        raise ValueError(f"{where}: the support of {name} cannot be listed here: {error}") from None
    n_batch = len(distribution.batch_shape)
    event = values.shape[1 + n_batch:]
    values = values.reshape(values.shape[:1] + event)
    return values if dtype is None else values.astype(dtype)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


class Distribution:
    """A ZhuSuan distribution: a numpyro distribution with `group_ndims` and sampling flags.

    Build one with a generated subclass (`ppl.distributions.Normal(0., std=1., group_ndims=1)`) or
    wrap any numpyro distribution with `Distribution.from_numpyro`.

    Every subclass takes these after the distribution's own parameters.

    Args:
      group_ndims: how many rightmost batch axes `log_prob` sums over (they form one event).
      is_reparameterized: whether gradients flow through samples; defaults to whether the
        distribution has a reparameterised sampler.
      use_path_derivative: evaluate `log_prob` with stopped parameters ("sticking the landing").
      dtype: for discrete distributions, the dtype samples are cast to (default: numpyro's).
      check_numerics: raise if a concrete `log_prob` holds NaN (ZhuSuan's `check_numerics`; values
        inside `jax.jit` are abstract and not checked).

    Attributes:
      distribution: the numpyro distribution.
      batch_shape, value_shape: ZhuSuan's names for numpyro's `batch_shape` and `event_shape`.

    Raises:
      ValueError / TypeError: bad parameters (the class name is in the message), `group_ndims`
        beyond the batch rank, `is_reparameterized=True` without a reparameterised sampler,
        `dtype=` on a continuous distribution.

    Example:
      >>> normal = ppl.distributions.Normal(jnp.zeros([4, 3]), std=1., group_ndims=1)
      >>> normal.sample(jax.random.key(0), n_samples=10).shape, normal.log_prob(jnp.zeros(3)).shape
      ((10, 4, 3), (4,))
    """

    _make = None
    zhusuan_name = "Distribution"

    def __init__(self, *args: Any, group_ndims: int = 0, is_reparameterized: bool | None = None,
                 use_path_derivative: bool = False, dtype: DTypeLike | None = None,
                 check_numerics: bool = False, **kwargs: Any) -> None:
        make = type(self)._make
        if make is None:
            raise TypeError("ppl.distributions.Distribution is abstract: use a subclass such as "
                            "ppl.distributions.Normal, or Distribution.from_numpyro(distribution)")
        try:
            distribution = make(*args, **kwargs)
            bound = inspect.signature(make).bind(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{self.zhusuan_name}: {error}") from None
        self._parameters: dict[str, Any] = dict(bound.arguments)
        self._setup(distribution, group_ndims, is_reparameterized, use_path_derivative, dtype,
                    check_numerics)

    def _setup(self, distribution, group_ndims, is_reparameterized, use_path_derivative, dtype,
               check_numerics):
        where = self.zhusuan_name
        self.distribution = distribution
        self.group_ndims = check_group_ndims(where, distribution, group_ndims)
        self.is_reparameterized = resolve_reparameterized(where, distribution, is_reparameterized)
        self.use_path_derivative = bool(use_path_derivative)
        self.sample_dtype = check_sample_dtype(where, distribution, dtype)
        self.check_numerics = bool(check_numerics)

    @classmethod
    def from_numpyro(cls, distribution: dist.Distribution, group_ndims: int = 0,
                     is_reparameterized: bool | None = None, use_path_derivative: bool = False,
                     dtype: DTypeLike | None = None, check_numerics: bool = False) -> Distribution:
        """Wraps a numpyro distribution (see the class docstring for the other arguments)."""
        self = object.__new__(Distribution)
        self._parameters = {}
        self._setup(distribution, group_ndims, is_reparameterized, use_path_derivative, dtype,
                    check_numerics)
        return self

    # ---------------------------------------------------------------- ZhuSuan's properties
    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The shape of independent draws (numpyro's `batch_shape`)."""
        return tuple(self.distribution.batch_shape)

    @property
    def value_shape(self) -> tuple[int, ...]:
        """The shape of one draw (numpyro's `event_shape`)."""
        return tuple(self.distribution.event_shape)

    def get_batch_shape(self) -> tuple[int, ...]:
        """Alias of `batch_shape` (ZhuSuan's static-shape accessor)."""
        return self.batch_shape

    def get_value_shape(self) -> tuple[int, ...]:
        """Alias of `value_shape` (ZhuSuan's static-shape accessor)."""
        return self.value_shape

    @property
    def is_continuous(self) -> bool:
        """Whether the support is continuous."""
        return not getattr(self.distribution.support, "is_discrete", False)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of samples."""
        if self.sample_dtype is not None:
            return self.sample_dtype
        try:
            return jax.eval_shape(lambda key: self.distribution.sample(key), jax.random.key(0)).dtype
        except NotImplementedError:         # observe-only distributions (UnnormalizedMultinomial)
            return self.param_dtype if self.is_continuous else jnp.dtype(jnp.int32)

    @property
    def param_dtype(self) -> np.dtype:
        """The floating dtype of the parameters."""
        leaves = [leaf for leaf in jax.tree_util.tree_leaves(self.distribution)
                  if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]
        return jnp.result_type(*leaves) if leaves else jnp.result_type(float)

    def __getattr__(self, name: str):
        # ZhuSuan's parameter properties (`normal.mean`, `normal.std`, ...), then numpyro's attributes
        if name.startswith("_") or name == "distribution":
            raise AttributeError(name)
        if name in self._parameters:
            return self._parameters[name]
        return getattr(self.distribution, name)

    # ---------------------------------------------------------------- sampling and densities
    def sample(self, key: jax.Array, n_samples: int | None = None) -> jax.Array:
        """Draws samples: shape `[*batch, *value]`, or `[n_samples, *batch, *value]` for an int.

        Args:
          key: a JAX PRNG key (ZhuSuan's samplers were stateful; here randomness is explicit).
          n_samples: None (no sample axis) or a positive int.

        Returns:
          The samples, cast to `dtype` if given; gradients are stopped unless reparameterised.

        Raises:
          ValueError: `n_samples` that is not None or a positive int.
        """
        if n_samples is not None and (not _is_int(n_samples) or n_samples < 1):
            raise ValueError(f"{self.zhusuan_name}.sample: n_samples must be a positive int or None, "
                             f"got {n_samples!r}")
        shape = () if n_samples is None else (int(n_samples),)
        samples = self.distribution.sample(key, shape)
        if self.sample_dtype is not None:
            samples = samples.astype(self.sample_dtype)
        return samples if self.is_reparameterized else jax.lax.stop_gradient(samples)

    def log_prob(self, given: Any) -> jax.Array:
        """log-density at `given`, summed over the last `group_ndims` batch axes.

        Args:
          given: broadcastable to `[..., *batch_shape, *value_shape]`.

        Returns:
          Shape `[..., *batch_shape[:len(batch_shape) - group_ndims]]`.

        Raises:
          ValueError: `given` does not broadcast with the distribution's shape; with
            `check_numerics`, a concrete result holding NaN.
        """
        given = jnp.asarray(given)
        full_shape = self.batch_shape + self.value_shape
        try:
            jnp.broadcast_shapes(given.shape, full_shape)
        except ValueError:
            raise ValueError(f"{self.zhusuan_name}.log_prob: given of shape {given.shape} does not "
                             f"broadcast with batch_shape + value_shape {full_shape}") from None
        log_prob = log_prob_with_group_ndims(self.distribution, given, self.group_ndims,
                                             self.use_path_derivative)
        if self.check_numerics and not isinstance(log_prob, jax.core.Tracer):
            if bool(jnp.any(jnp.isnan(log_prob))):
                raise ValueError(f"{self.zhusuan_name}.log_prob: the result holds NaN "
                                 "(check_numerics=True)")
        return log_prob

    def prob(self, given: Any) -> jax.Array:
        """`exp(log_prob(given))`."""
        return jnp.exp(self.log_prob(given))

    def __repr__(self) -> str:
        return (f"{self.zhusuan_name}({type(self.distribution).__name__}, batch_shape="
                f"{self.batch_shape}, value_shape={self.value_shape}, group_ndims={self.group_ndims})")


_EXTRA_PARAMETERS = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                     for name, default in [("group_ndims", 0), ("is_reparameterized", None),
                                           ("use_path_derivative", False), ("dtype", None),
                                           ("check_numerics", False)]]


def _make_class(method: str, spec) -> type:
    make = spec.make_distribution
    signature = inspect.signature(make)
    signature = signature.replace(parameters=list(signature.parameters.values()) + _EXTRA_PARAMETERS)
    doc = (f"ZhuSuan's `zs.distributions.{spec.zhusuan_name}`: {make.__doc__}\n\n"
           f"Parameters as `ppl.nodes.{method}`, plus `group_ndims`, `is_reparameterized`,\n"
           "`use_path_derivative`, `dtype` (discrete only) and `check_numerics`; see\n"
           f"`ppl.distributions.Distribution`. The node helper is `bn.{method}`.")
    namespace = {"_make": staticmethod(make), "zhusuan_name": spec.zhusuan_name, "__doc__": doc,
                 "__module__": __name__}
    cls = type(spec.zhusuan_name, (Distribution,), namespace)
    cls.__signature__ = signature  # type: ignore[attr-defined]  # read by inspect.signature
    return cls


CLASSES: dict[str, type] = {spec.zhusuan_name: _make_class(method, spec)
                            for method, spec in NODE_TABLE.items()}
globals().update(CLASSES)
for _target, _alias in ZHUSUAN_ALIASES.values():
    globals()[_alias] = CLASSES[NODE_TABLE[_target].zhusuan_name]
__all__ += list(CLASSES) + [alias for _, alias in ZHUSUAN_ALIASES.values()]
del _target, _alias

_MOVED = {"OneHotCategorical": "OneHotCategorical", "logits_from": "logits_from"}


def __getattr__(name: str):
    # names this module held before the ZhuSuan classes moved in (one release of grace)
    if name in _MOVED:
        warnings.warn(f"ppl.distributions.{name} moved to ppl.numpyro_extras.{_MOVED[name]} (the "
                      "numpyro subclass); ppl.distributions now holds ZhuSuan's distribution classes",
                      DeprecationWarning, stacklevel=2)
        return getattr(numpyro_extras, _MOVED[name])
    raise AttributeError(f"module 'ppl.distributions' has no attribute {name!r}")
