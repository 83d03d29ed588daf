"""`BayesianNet`: a record of named stochastic and deterministic nodes, built while a model runs.

A model is a Python function that creates a `BayesianNet` and adds nodes to it. Each stochastic
node is either observed (its value comes from `observed`) or sampled with a key derived from the
node's name, so adding a node never changes the samples of another. The net is an ordinary Python
value that lives inside one trace: nothing global survives a call.

References:
  Shi, Chen, Zhou, Zhuo, Zhu, Wang, Zhang, Song and Kang, `ZhuSuan: A Library for Bayesian Deep
  Learning <https://arxiv.org/abs/1709.05870>`_, 2017.
"""

from __future__ import annotations

import functools
import threading
import zlib
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from ppl.nodes import NODE_TABLE, NodeSpec

__all__ = ["BayesianNet", "StochasticTensor", "DeterministicTensor", "node_key"]


def node_key(key: jax.Array, name: str) -> jax.Array:
    """The key a node named `name` draws with: `fold_in(key, crc32(name))`."""
    return jax.random.fold_in(key, zlib.crc32(name.encode("utf-8")))


def _sum_rightmost(x: jax.Array, n: int) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(-n, 0))) if n > 0 else x


class StochasticTensor:
    """A stochastic node: its name, value, distribution and log-density.

    Attributes:
      name: the node's name in its `BayesianNet`.
      value: `jax.Array` of shape `[n_samples, *batch_shape, *event_shape]` (no leading axis when
        `n_samples` is None), or the observation as given (broadcastable to that shape).
      distribution: the `numpyro.distributions.Distribution` the node follows.
      group_ndims: how many rightmost batch axes `log_prob` sums over (they form one event).
      n_samples: the number of samples drawn along a new leading axis, or None.
      is_observed: whether `value` came from the observations.
      is_reparameterized: whether gradients flow through a sampled `value` to the parameters.
      use_path_derivative: whether `log_prob` stops gradients to the distribution's parameters
        (the "sticking the landing" estimator of Roeder, Wu and Duvenaud, 2017).
      log_prob: `distribution.log_prob(value)` summed over the last `group_ndims` batch axes,
        shape `[n_samples, *batch_shape[:len(batch_shape) - group_ndims]]`; computed on first use.
    """

    def __init__(self, name: str, value: jax.Array, distribution: dist.Distribution, *,
                 group_ndims: int, n_samples: int | None, is_observed: bool,
                 is_reparameterized: bool, use_path_derivative: bool):
        self.name = name
        self.value = value
        self.distribution = distribution
        self.group_ndims = group_ndims
        self.n_samples = n_samples
        self.is_observed = is_observed
        self.is_reparameterized = is_reparameterized
        self.use_path_derivative = use_path_derivative
        self._log_prob = None

    @property
    def log_prob(self) -> jax.Array:
        """The node's log-density with `group_ndims` applied (see the class docstring)."""
        if self._log_prob is None:
            distribution = self.distribution
            if self.use_path_derivative:
                distribution = jax.tree_util.tree_map(jax.lax.stop_gradient, distribution)
            self._log_prob = _sum_rightmost(distribution.log_prob(self.value), self.group_ndims)
        return self._log_prob

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of `value`."""
        return tuple(jnp.shape(self.value))

    @property
    def dtype(self):
        """The dtype of `value`."""
        return jnp.result_type(self.value)

    def __repr__(self) -> str:
        kind = "observed" if self.is_observed else "sampled"
        return (f"StochasticTensor({self.name!r}, {type(self.distribution).__name__}, {kind}, "
                f"shape={self.shape}, group_ndims={self.group_ndims}, n_samples={self.n_samples})")


class DeterministicTensor(NamedTuple):
    """A deterministic node: a named value computed from other nodes."""

    name: str
    value: jax.Array


class _Context(NamedTuple):
    observed: Mapping[str, Any]
    key: jax.Array | None


_CONTEXT = threading.local()


def _context_stack() -> list[_Context]:
    if not hasattr(_CONTEXT, "stack"):
        _CONTEXT.stack = []
    return _CONTEXT.stack


class observe_context:
    """Makes `observed` and `key` the defaults of every `BayesianNet()` created inside the block.

    Used by `MetaBayesianNet.observe`; a builder function writes a plain `ppl.BayesianNet()`.
    """

    def __init__(self, observed: Mapping[str, Any], key: jax.Array | None):
        self._context = _Context(dict(observed), key)

    def __enter__(self):
        _context_stack().append(self._context)
        return self

    def __exit__(self, *exc_info):
        _context_stack().pop()
        return False


class BayesianNet:
    """A Bayesian network of named stochastic and deterministic nodes (ZhuSuan's `BayesianNet`).

    Created inside a model-building function, usually without arguments: when the builder runs
    under `MetaBayesianNet.observe(key, **observed)`, the net takes its observations and key from
    there. It can also be created directly with `BayesianNet(observed={...}, key=key)`.

    Node helpers (`bn.normal`, `bn.bernoulli`, ... one per entry of `ppl.nodes.NODE_TABLE`) keep
    ZhuSuan's parameter names, take `group_ndims` and `n_samples`, and return the node's value as a
    plain `jax.Array`; `bn[name]` returns the `StochasticTensor` record.

    Args:
      observed: maps node names to observed values.
      key: a JAX PRNG key for the nodes that must be sampled; node `name` draws with
        `fold_in(key, crc32(name))`. May be None when every stochastic node is observed.

    Example:
      >>> bn = BayesianNet(key=jax.random.key(0))
      >>> z = bn.normal("z", jnp.zeros(3), std=1., group_ndims=1, n_samples=5)
      >>> bn.log_joint().shape
      (5,)
    """

    def __init__(self, observed: Mapping[str, Any] | None = None, key: jax.Array | None = None):
        stack = _context_stack()
        if observed is None and key is None and stack:
            observed, key = stack[-1].observed, stack[-1].key
        self._observed = dict(observed or {})
        self._key = key
        self._nodes: dict[str, StochasticTensor | DeterministicTensor] = {}
        self._log_joint_fn: Callable[[BayesianNet], jax.Array] | None = None

    # ---------------------------------------------------------------- node creation
    def stochastic(self, name: str, distribution: dist.Distribution, *, group_ndims: int = 0,
                   n_samples: int | None = None, is_reparameterized: bool | None = None,
                   use_path_derivative: bool = False) -> jax.Array:
        """Adds a stochastic node following any `numpyro.distributions.Distribution`.

        Args:
          name: the node's name, unique in this net.
          distribution: a numpyro distribution with `batch_shape` B and `event_shape` E.
          group_ndims: how many rightmost axes of B the node's `log_prob` sums over.
          n_samples: if an int, draw that many samples along a new leading axis.
          is_reparameterized: whether gradients flow through a sampled value; defaults to
            `distribution.has_rsample`. False stops gradients through the sample.
          use_path_derivative: evaluate `log_prob` with stopped distribution parameters.

        Returns:
          The node's value: the observation if `name` is observed, else a sample of shape
          `[n_samples, *B, *E]` (`[*B, *E]` when `n_samples` is None).

        Raises:
          ValueError: a duplicate name; `group_ndims` larger than the rank of B; an observation
            whose shape does not broadcast with `[n_samples, *B, *E]`; a node that must be sampled
            but the net has no key.
          TypeError: an observation of the wrong kind (complex, or a float for an integer-valued
            node), or `is_reparameterized=True` for a distribution that cannot be reparameterised.
        """
        self._check_new_name(name)
        group_ndims, n_samples = _check_sizes(name, distribution, group_ndims, n_samples)
        if is_reparameterized is None:
            is_reparameterized = bool(distribution.has_rsample)
        elif is_reparameterized and not distribution.has_rsample:
            raise TypeError(f"node {name!r}: {type(distribution).__name__} has no reparameterised "
                            "sampler; use is_reparameterized=False (score-function gradients)")
        sample_shape = () if n_samples is None else (n_samples,)
        expected = sample_shape + tuple(distribution.batch_shape) + tuple(distribution.event_shape)
        if name in self._observed:
            value = _check_observation(name, self._observed[name], distribution, expected)
            is_observed = True
        else:
            if self._key is None:
                raise ValueError(
                    f"node {name!r} is not observed and must be sampled, but no key was given: "
                    "pass a key, e.g. model.observe(jax.random.key(0), ...)")
            value = distribution.sample(node_key(self._key, name), sample_shape)
            if not is_reparameterized:
                value = jax.lax.stop_gradient(value)
            is_observed = False
        self._nodes[name] = StochasticTensor(
            name, value, distribution, group_ndims=group_ndims, n_samples=n_samples,
            is_observed=is_observed, is_reparameterized=is_reparameterized,
            use_path_derivative=use_path_derivative)
        return value

    def deterministic(self, name: str, value: Any) -> jax.Array:
        """Adds a named deterministic node and returns `value` as a `jax.Array`.

        Raises:
          ValueError: a duplicate name, or `name` is among the observations (a deterministic node
            cannot be observed).
        """
        self._check_new_name(name)
        if name in self._observed:
            raise ValueError(f"node {name!r} is deterministic and cannot be observed")
        value = jnp.asarray(value)
        self._nodes[name] = DeterministicTensor(name, value)
        return value

    def _check_new_name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a node name must be a str, got {type(name).__name__}: {name!r}")
        if name in self._nodes:
            raise ValueError(f"duplicate node name {name!r}: every node in a BayesianNet needs its "
                             "own name")

    # ---------------------------------------------------------------- queries
    def __getitem__(self, name: str) -> StochasticTensor | DeterministicTensor:
        try:
            return self._nodes[name]
        except KeyError:
            raise KeyError(f"no node named {name!r}; the net has {list(self._nodes)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, name_or_names: str | Sequence[str]):
        """The node record for a name, or a list of records for a list of names."""
        if isinstance(name_or_names, str):
            return self[name_or_names]
        return [self[name] for name in name_or_names]

    @property
    def nodes(self) -> dict[str, StochasticTensor | DeterministicTensor]:
        """All nodes by name, in creation order."""
        return dict(self._nodes)

    @property
    def observed(self) -> dict[str, Any]:
        """The observations this net was built with."""
        return dict(self._observed)

    def stochastic_nodes(self) -> dict[str, StochasticTensor]:
        """The stochastic nodes by name, observed and sampled, in creation order."""
        return {k: v for k, v in self._nodes.items() if isinstance(v, StochasticTensor)}

    def latent_nodes(self) -> dict[str, StochasticTensor]:
        """The stochastic nodes that were sampled rather than observed."""
        return {k: v for k, v in self.stochastic_nodes().items() if not v.is_observed}

    def cond_log_prob(self, name_or_names: str | Sequence[str]):
        """Log-density of one node given its parents (`group_ndims` applied), or a list of them.

        Raises:
          TypeError: a name refers to a deterministic node.
        """
        if not isinstance(name_or_names, str):
            return [self.cond_log_prob(name) for name in name_or_names]
        node = self[name_or_names]
        if not isinstance(node, StochasticTensor):
            raise TypeError(f"node {name_or_names!r} is deterministic and has no log-density")
        return node.log_prob

    def log_joint(self) -> jax.Array:
        """log p of every stochastic node, summed with broadcasting (right-aligned shapes).

        If the net came from a `MetaBayesianNet` whose `log_joint` was set, calls that instead.
        """
        if self._log_joint_fn is not None:
            return self._log_joint_fn(self)
        return self.default_log_joint()

    def default_log_joint(self) -> jax.Array:
        """The sum of every stochastic node's `log_prob`, ignoring any `log_joint` override."""
        terms = [node.log_prob for node in self.stochastic_nodes().values()]
        if not terms:
            return jnp.zeros(())
        shape = jnp.broadcast_shapes(*(jnp.shape(t) for t in terms))
        return functools.reduce(jnp.add, [jnp.broadcast_to(t, shape) for t in terms])

    def __repr__(self) -> str:
        return f"BayesianNet({list(self._nodes)})"


def _check_sizes(name, distribution, group_ndims, n_samples):
    if not isinstance(distribution, dist.Distribution):
        raise TypeError(f"node {name!r}: expected a numpyro Distribution, got {type(distribution).__name__}")
    if not _is_int(group_ndims) or group_ndims < 0:
        raise ValueError(f"node {name!r}: group_ndims must be a non-negative int, got {group_ndims!r}")
    batch_shape = tuple(distribution.batch_shape)
    if group_ndims > len(batch_shape):
        raise ValueError(f"node {name!r}: group_ndims={group_ndims} exceeds the rank of its batch "
                         f"shape {batch_shape}")
    if n_samples is not None and (not _is_int(n_samples) or n_samples < 1):
        raise ValueError(f"node {name!r}: n_samples must be a positive int or None, got {n_samples!r}")
    return int(group_ndims), (None if n_samples is None else int(n_samples))


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_observation(name, value, distribution, expected):
    value = jnp.asarray(value)
    if jnp.issubdtype(value.dtype, jnp.complexfloating):
        raise TypeError(f"node {name!r}: observation has complex dtype {value.dtype}")
    is_discrete = getattr(distribution.support, "is_discrete", False)
    if _is_index_valued(distribution) and not jnp.issubdtype(value.dtype, jnp.integer):
        raise TypeError(f"node {name!r}: {type(distribution).__name__} takes integer category "
                        f"indices, but the observation has dtype {value.dtype}")
    if not is_discrete and not jnp.issubdtype(value.dtype, jnp.floating):
        value = value.astype(jnp.result_type(float))
    try:
        jnp.broadcast_shapes(value.shape, expected)
    except ValueError:
        raise ValueError(f"node {name!r}: observation of shape {value.shape} does not broadcast with "
                         f"the node's shape {expected} (n_samples + batch_shape + event_shape)") from None
    event_shape = tuple(distribution.event_shape)
    if event_shape and value.shape[value.ndim - len(event_shape):] != event_shape:
        raise ValueError(f"node {name!r}: observation of shape {value.shape} must end in the "
                         f"event shape {event_shape}")
    return value


def _is_index_valued(distribution) -> bool:
    return isinstance(distribution, (dist.CategoricalLogits, dist.CategoricalProbs))


def _make_helper(method: str, spec: NodeSpec):
    make = spec.make_distribution

    def helper(self, name, *args, group_ndims=0, n_samples=None, is_reparameterized=None,
               use_path_derivative=False, **kwargs):
        try:
            distribution = make(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(f"node {name!r} ({method}): {error}") from None
        return self.stochastic(name, distribution, group_ndims=group_ndims, n_samples=n_samples,
                               is_reparameterized=is_reparameterized,
                               use_path_derivative=use_path_derivative)

    helper.__name__ = helper.__qualname__ = method
    helper.__doc__ = (
        f"Adds a stochastic node (ZhuSuan's `{spec.zhusuan_name}`): {make.__doc__}\n\n"
        f"Call as `bn.{method}(name, ...)` with the parameters of `ppl.nodes.{make.__name__}`, plus\n"
        "`group_ndims`, `n_samples`, `is_reparameterized` and `use_path_derivative` as in\n"
        "`BayesianNet.stochastic`. Returns the node's value; see `BayesianNet.stochastic` for the\n"
        "shapes and the errors raised.")
    return helper


for _method, _spec in NODE_TABLE.items():
    setattr(BayesianNet, _method, _make_helper(_method, _spec))
del _method, _spec
