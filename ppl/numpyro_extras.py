"""Distributions ZhuSuan has and numpyro lacks, as `numpyro.distributions.Distribution` subclasses.

Everything else in the DSL uses `numpyro.distributions` directly (see `ppl.nodes`); ZhuSuan-style
distribution objects (`ppl.distributions.Normal(mean, std=..., group_ndims=...)`, ...) wrap these and
numpyro's. Use the classes here with `bn.stochastic(name, distribution)` or anywhere numpyro
distributions go (numpyro models, `numpyro.infer`). The classes here
follow numpyro's conventions: `batch_shape`/`event_shape`, `sample(key, sample_shape)`,
`log_prob(value)`, a `support` constraint, and pytree registration through `pytree_data_fields`, so
they work under `jax.jit`, `jax.vmap` and `jax.grad` like any numpyro distribution.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike
from numpyro.distributions import constraints
from numpyro.distributions.distribution import Distribution
from numpyro.distributions.util import promote_shapes, validate_sample

__all__ = [
    "OneHotCategorical",
    "ExpConcrete",
    "Concrete",
    "UnnormalizedMultinomial",
    "HalfStudentT",
    "logits_from",
]


class _OneHot(constraints.Constraint):
    """One-hot vectors along the last axis (a discrete constraint)."""

    is_discrete = True
    event_dim = 1

    def __call__(self, x):
        is_binary = (x == 0) | (x == 1)
        return jnp.all(is_binary, axis=-1) & (jnp.sum(x, axis=-1) == 1)

    def feasible_like(self, prototype):
        """See `numpyro.distributions.constraints.Constraint.feasible_like`."""
        return jnp.zeros_like(prototype).at[..., 0].set(1)


one_hot = _OneHot()


def logits_from(logits: ArrayLike | None = None, probs: ArrayLike | None = None, *,
                names: tuple[str, str] = ("logits", "probs")) -> jax.Array:
    """Returns unnormalised log-probabilities from exactly one of `logits` or `probs`.

    Args:
      logits: array of shape `[..., n_categories]` (or `[...]` for a Bernoulli), or None.
      probs: array of the same shape, entries in [0, 1], or None.
      names: the argument names to use in the error message.

    Returns:
      `logits`, or `log(probs)` when `probs` is given.

    Raises:
      ValueError: both or neither of the two arguments are given.
    """
    if (logits is None) == (probs is None):
        given = "both" if logits is not None else "neither"
        raise ValueError(f"exactly one of `{names[0]}` or `{names[1]}` must be given, got {given}")
    if logits is not None:
        return jnp.asarray(logits)
    return jnp.log(jnp.asarray(probs))


def _check_has_category_axis(logits):
    if jnp.ndim(logits) < 1:
        raise ValueError(f"`logits` must have at least one axis (the categories), got shape "
                         f"{jnp.shape(logits)}")


class _SimplexLogitsDistribution(Distribution):
    """Shared constructor for distributions parameterised by `logits` over the last axis."""

    arg_constraints = {"logits": constraints.real_vector}
    pytree_data_fields: tuple[str, ...] = ("logits",)

    def __init__(self, logits: ArrayLike, *, validate_args: bool | None = None) -> None:
        _check_has_category_axis(logits)
        self.logits = jnp.asarray(logits)
        batch_shape, event_shape = self.logits.shape[:-1], self.logits.shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def n_categories(self) -> int:
        """The number of categories K, the size of the last axis of `logits`."""
        return self.event_shape[-1]


class OneHotCategorical(_SimplexLogitsDistribution):
    """Categorical distribution whose samples are one-hot vectors (ZhuSuan's `OnehotCategorical`).

    Args:
      logits: shape `[*batch, n_categories]`, unnormalised log-probabilities.

    Samples have shape `[*sample_shape, *batch, n_categories]` and dtype int32.
    """

    support = one_hot
    has_enumerate_support = True

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """See `numpyro.distributions.Distribution.sample`."""
        shape = tuple(sample_shape) + self.batch_shape
        index = jax.random.categorical(key, self.logits, axis=-1, shape=shape)
        return jax.nn.one_hot(index, self.n_categories, dtype=jnp.int32)

    def enumerate_support(self, expand: bool = True) -> jax.Array:
        """The K one-hot vectors, shape `[K, *batch, K]` (`[K, 1, ..., 1, K]` without `expand`).

        See `numpyro.distributions.Distribution.enumerate_support`.
        """
        k = self.n_categories
        values = jnp.eye(k, dtype=jnp.int32).reshape((k,) + (1,) * len(self.batch_shape) + (k,))
        return jnp.broadcast_to(values, (k,) + self.batch_shape + (k,)) if expand else values

    @validate_sample
    def log_prob(self, value: jax.Array) -> jax.Array:
        """See `numpyro.distributions.Distribution.log_prob`."""
        log_probs = jax.nn.log_softmax(self.logits, axis=-1)
        return jnp.sum(value * log_probs, axis=-1)

    @property
    def mean(self) -> jax.Array:
        """The category probabilities softmax(logits), shape `[*batch, n_categories]`."""
        return jax.nn.softmax(self.logits, axis=-1)

    @property
    def variance(self) -> jax.Array:
        """p (1 - p) per category, shape `[*batch, n_categories]`."""
        probs = self.mean
        return probs * (1 - probs)


class _ConcreteBase(_SimplexLogitsDistribution):
    """Shared parameters and Gumbel-softmax sampling for the concrete family."""

    arg_constraints = {"temperature": constraints.positive, "logits": constraints.real_vector}
    pytree_data_fields = ("temperature", "logits")
    reparametrized_params = ["temperature", "logits"]

    def __init__(self, temperature: ArrayLike, logits: ArrayLike, *,
                 validate_args: bool | None = None) -> None:
        logits = jnp.asarray(logits)
        _check_has_category_axis(logits)
        tau = jnp.asarray(temperature, dtype=jnp.result_type(logits, float))
        # temperature broadcasts against the batch shape of logits.
        (tau,) = promote_shapes(tau, shape=logits.shape[:-1])
        self.temperature: jax.Array = tau
        batch_shape = jnp.broadcast_shapes(jnp.shape(tau), logits.shape[:-1])
        logits = jnp.broadcast_to(logits, batch_shape + logits.shape[-1:])
        super().__init__(logits, validate_args=validate_args)

    def _log_sample(self, key, sample_shape):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        gumbel = jax.random.gumbel(key, shape, dtype=self.logits.dtype)
        scaled = (self.logits + gumbel) / self.temperature[..., None]
        return scaled - jax.nn.logsumexp(scaled, axis=-1, keepdims=True)

    def _log_normaliser(self):
        n = self.n_categories
        return math.lgamma(n) + (n - 1) * jnp.log(self.temperature)


class ExpConcrete(_ConcreteBase):
    """The log of a Concrete sample, whose density is better conditioned (Maddison et al., 2017).

    .. math::
      \\log p(y) = \\log (K-1)! + (K-1)\\log\\tau + \\sum_k (l_k - \\tau y_k)
                   - K \\operatorname{logsumexp}_k (l_k - \\tau y_k)

    Args:
      temperature: positive, broadcastable to `batch_shape`.
      logits: shape `[*batch, n_categories]`.

    Samples have shape `[*sample_shape, *batch, n_categories]` with `logsumexp(y, -1) = 0`.

    References:
      Maddison, Mnih and Teh, `The Concrete Distribution: A Continuous Relaxation of Discrete
      Random Variables <https://arxiv.org/abs/1611.00712>`_, ICLR 2017, Appendix C.3.
    """

    support = constraints.real_vector

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """See `numpyro.distributions.Distribution.sample`."""
        return self._log_sample(key, sample_shape)

    def log_prob(self, value: jax.Array) -> jax.Array:
        """See `numpyro.distributions.Distribution.log_prob`."""
        tau = self.temperature[..., None]
        centred = self.logits - tau * value
        n = self.n_categories
        return self._log_normaliser() + jnp.sum(centred, -1) - n * jax.nn.logsumexp(centred, -1)


class Concrete(_ConcreteBase):
    """The Concrete (Gumbel-softmax) relaxation of a one-hot categorical (ZhuSuan's `Concrete`).

    Args:
      temperature: positive, broadcastable to `batch_shape`.
      logits: shape `[*batch, n_categories]`.

    Samples lie on the simplex, shape `[*sample_shape, *batch, n_categories]`.

    References:
      Maddison, Mnih and Teh, `The Concrete Distribution <https://arxiv.org/abs/1611.00712>`_, 2017;
      Jang, Gu and Poole, `Categorical Reparameterization with Gumbel-Softmax
      <https://arxiv.org/abs/1611.01144>`_, 2017.
    """

    support = constraints.simplex

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """See `numpyro.distributions.Distribution.sample`."""
        return jnp.exp(self._log_sample(key, sample_shape))

    def log_prob(self, value: jax.Array) -> jax.Array:
        """See `numpyro.distributions.Distribution.log_prob`."""
        tau = self.temperature[..., None]
        log_value = jnp.log(value)
        centred = self.logits - tau * log_value
        n = self.n_categories
        return (self._log_normaliser() + jnp.sum(centred - log_value, -1)
                - n * jax.nn.logsumexp(centred, -1))


class UnnormalizedMultinomial(_SimplexLogitsDistribution):
    """Multinomial log-likelihood without the multinomial coefficient (ZhuSuan's).

    `log_prob(x) = sum_k x_k log softmax(logits)_k`: the count vector's likelihood up to a constant
    that does not depend on the parameters, so the number of trials need not be known. It cannot be
    sampled; use it for observed counts (e.g. bag-of-words documents of varying length).

    Args:
      logits: shape `[*batch, n_categories]`.
    """

    support = constraints.independent(constraints.nonnegative_integer, 1)

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """See `numpyro.distributions.Distribution.sample`."""
        raise NotImplementedError(
            "UnnormalizedMultinomial cannot be sampled (the number of trials is unknown); "
            "observe it, or use `multinomial` with `n_experiments`")

    def log_prob(self, value: jax.Array) -> jax.Array:
        """See `numpyro.distributions.Distribution.log_prob`."""
        return jnp.sum(value * jax.nn.log_softmax(self.logits, axis=-1), axis=-1)


class HalfStudentT(Distribution):
    """`abs(X)` for X ~ StudentT(df, 0, scale): a heavy-tailed prior on a scale (Gelman 2006).

    Density `2 t_df(x / scale) / scale` on `[0, inf)`; `df = 1` is the half-Cauchy, `df -> inf` the
    half-normal. Sampled as the absolute value of a Student-t draw (reparameterised).

    Args:
      df: degrees of freedom, positive, broadcast with `scale`.
      scale: the scale, positive.

    Example:
      >>> bn.stochastic("tau", HalfStudentT(3.0, 2.5))

    References:
      Gelman, `Prior distributions for variance parameters in hierarchical models
      <https://doi.org/10.1214/06-BA117A>`_, Bayesian Analysis 2006.
    """

    arg_constraints = {"df": constraints.positive, "scale": constraints.positive}
    support = constraints.nonnegative
    reparametrized_params = ["df", "scale"]
    pytree_data_fields = ("df", "scale")

    def __init__(self, df: ArrayLike = 1.0, scale: ArrayLike = 1.0, *,
                 validate_args: bool | None = None) -> None:
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(df), jnp.shape(scale))
        self.df, self.scale = (jnp.broadcast_to(v, batch_shape) for v in promote_shapes(df, scale))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """See `numpyro.distributions.Distribution.sample`."""
        shape = tuple(sample_shape) + self.batch_shape
        return jnp.abs(jax.random.t(key, self.df, shape, jnp.result_type(self.scale, float))) * self.scale

    @validate_sample
    def log_prob(self, value: jax.Array) -> jax.Array:
        """See `numpyro.distributions.Distribution.log_prob`."""
        z = value / self.scale
        half = 0.5 * (self.df + 1.0)
        log_norm = (jax.scipy.special.gammaln(half) - jax.scipy.special.gammaln(0.5 * self.df)
                    - 0.5 * jnp.log(self.df * math.pi) - jnp.log(self.scale))
        return math.log(2.0) + log_norm - half * jnp.log1p(z * z / self.df)

    @property
    def mean(self) -> jax.Array:
        """`2 scale sqrt(df / pi) Gamma((df+1)/2) / (Gamma(df/2) (df-1))` for df > 1, else inf."""
        gammaln = jax.scipy.special.gammaln
        log_ratio = gammaln(0.5 * (self.df + 1.0)) - gammaln(0.5 * self.df)
        value = 2.0 * self.scale * jnp.sqrt(self.df / math.pi) * jnp.exp(log_ratio) / (self.df - 1.0)
        return jnp.where(self.df > 1.0, value, jnp.inf)
