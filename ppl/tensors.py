"""The node records of a `BayesianNet`: `StochasticTensor` and `DeterministicTensor`.

Both stand for their value (see `ppl.array_like.ArrayLike`): `bn["z"] * 2`, `jnp.mean(bn["z"])`
and `bn["y_mean"] + 1` work as on the arrays, as ZhuSuan's tensors did.
"""

from __future__ import annotations

import jax
import numpyro.distributions as dist

from ppl.array_like import ArrayLike
from ppl.distributions import Distribution, log_prob_with_group_ndims

__all__ = ["StochasticTensor", "DeterministicTensor"]


class StochasticTensor(ArrayLike):
    """A stochastic node: its name, value, distribution and log-density; stands for its value.

    Attributes:
      name: the node's name in its `BayesianNet`.
      value: `jax.Array` of shape `[n_samples, *batch_shape, *event_shape]` (no leading axis when
        `n_samples` is None), or the observation as given (broadcastable to that shape).
      tensor: the same as `value` (ZhuSuan's name).
      distribution: the `numpyro.distributions.Distribution` the node follows.
      dist: the same as a ZhuSuan distribution (`ppl.distributions.Distribution`, carrying the
        node's `group_ndims`, so `dist.log_prob(x)` has the node's `log_prob` shape).
      group_ndims: how many rightmost batch axes `log_prob` sums over (they form one event).
      n_samples: the number of samples drawn along a new leading axis, or None.
      is_observed: whether `value` came from the observations.
      is_reparameterized: whether gradients flow through a sampled `value` to the parameters.
      use_path_derivative: whether `log_prob` stops gradients to the distribution's parameters
        (the "sticking the landing" estimator of Roeder, Wu and Duvenaud, 2017).
      log_prob: `distribution.log_prob(value)` summed over the last `group_ndims` batch axes,
        shape `[n_samples, *batch_shape[:len(batch_shape) - group_ndims]]`; computed on first use.
        `cond_log_p` is ZhuSuan's name for it.
    """

    def __init__(self, name: str, value: jax.Array, distribution: dist.Distribution, *,
                 group_ndims: int, n_samples: int | None, is_observed: bool,
                 is_reparameterized: bool, use_path_derivative: bool,
                 zhusuan_dist: Distribution | None = None):
        self.name = name
        self.value = value
        self.distribution = distribution
        self.group_ndims = group_ndims
        self.n_samples = n_samples
        self.is_observed = is_observed
        self.is_reparameterized = is_reparameterized
        self.use_path_derivative = use_path_derivative
        self._zhusuan_dist = zhusuan_dist
        self._log_prob: jax.Array | None = None

    def _as_array(self) -> jax.Array:
        return self.value

    @property
    def log_prob(self) -> jax.Array:
        """The node's log-density with `group_ndims` applied (see the class docstring).

        Raises:
          TypeError / ValueError / IndexError: the distribution's `log_prob` failed on this value;
            the message names the node, its distribution, and the shapes and dtypes involved.
        """
        if self._log_prob is None:
            try:
                self._log_prob = log_prob_with_group_ndims(self.distribution, self.value,
                                                           self.group_ndims, self.use_path_derivative)
            except (TypeError, ValueError, IndexError) as error:
                raise _renamed(error, self._describe_failure(error)) from error
        return self._log_prob

    @property
    def cond_log_p(self) -> jax.Array:
        """Alias of `log_prob` (ZhuSuan's name)."""
        return self.log_prob

    @property
    def dist(self) -> Distribution:
        """The node's distribution as a ZhuSuan distribution (with the node's `group_ndims`)."""
        if self._zhusuan_dist is None:
            self._zhusuan_dist = Distribution.from_numpyro(
                self.distribution, group_ndims=self.group_ndims,
                is_reparameterized=self.is_reparameterized, use_path_derivative=self.use_path_derivative)
        return self._zhusuan_dist

    def _describe_failure(self, error: Exception) -> str:
        d = self.distribution
        return (f"node {self.name!r}: log_prob of {type(d).__name__} (batch_shape {tuple(d.batch_shape)}, "
                f"event_shape {tuple(d.event_shape)}) failed on a value of shape {self.shape} and dtype "
                f"{self.dtype}: {error}")

    def __repr__(self) -> str:
        kind = "observed" if self.is_observed else "sampled"
        return (f"StochasticTensor({self.name!r}, {type(self.distribution).__name__}, {kind}, "
                f"shape={self.shape}, group_ndims={self.group_ndims}, n_samples={self.n_samples})")


class DeterministicTensor(ArrayLike):
    """A deterministic node: a named value computed from other nodes; stands for its value.

    Attributes:
      name: the node's name.
      value: the value, a `jax.Array` (`tensor` is ZhuSuan's name for it).
    """

    def __init__(self, name: str, value: jax.Array):
        self.name = name
        self.value = value

    def _as_array(self) -> jax.Array:
        return self.value

    def __repr__(self) -> str:
        return f"DeterministicTensor({self.name!r}, shape={self.shape})"


def _renamed(error: Exception, message: str) -> Exception:
    """`error` re-created with `message` when its type allows it, else a plain one of its kind."""
    try:
        return type(error)(message)
    except Exception:       # exception types whose constructor takes other arguments
        for kind in (IndexError, ValueError, TypeError):
            if isinstance(error, kind):
                return kind(message)
        return ValueError(message)
