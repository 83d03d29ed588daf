"""`BayesianNet`: a record of named stochastic and deterministic nodes, built while a model runs.

A model is a Python function that creates a `BayesianNet` and adds nodes to it. Each stochastic
node is either observed (its value comes from `observed`) or sampled with a key derived from the
node's name alone (`node_key`), so adding a node never changes the samples of another. The net is an
ordinary Python value that lives inside one trace: nothing global survives a call.

References:
  Shi, Chen, Zhou, Zhuo, Zhu, Wang, Zhang, Song and Kang, `ZhuSuan: A Library for Bayesian Deep
  Learning <https://arxiv.org/abs/1709.05870>`_, 2017.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.typing import DTypeLike

from ppl import checks, keys, substitution
from ppl.distributions import Distribution, check_group_ndims, check_sample_dtype, resolve_reparameterized
from ppl.keys import node_key
from ppl.nodes import NODE_TABLE, ZHUSUAN_ALIASES, NodeSpec
from ppl.substitution import NodeSite
from ppl.tensors import DeterministicTensor, StochasticTensor

__all__ = ["BayesianNet", "StochasticTensor", "DeterministicTensor", "node_key"]


class _Context(NamedTuple):
    observed: Mapping[str, Any]
    key: jax.Array | None
    out_of_support: str | None


_CONTEXT = threading.local()


def _context_stack() -> list[_Context]:
    if not hasattr(_CONTEXT, "stack"):
        _CONTEXT.stack = []
    return _CONTEXT.stack


class observe_context:
    """Makes `observed` and `key` the defaults of every `BayesianNet()` created inside the block.

    Used by `MetaBayesianNet.observe`; a builder function writes a plain `ppl.BayesianNet()`.
    `out_of_support` is the model's own mode for out-of-support observations (None: the setting
    in force, see `ppl.set_out_of_support`).
    """

    def __init__(self, observed: Mapping[str, Any], key: jax.Array | None,
                 out_of_support: str | None = None):
        self._context = _Context(dict(observed), key, out_of_support)

    def __enter__(self):
        _context_stack().append(self._context)
        return self

    def __exit__(self, *exc_info):
        _context_stack().pop()
        return False


if TYPE_CHECKING:  # the node helpers made at import time, typed
    from ppl._node_helpers import NodeHelpers
else:
    NodeHelpers = object


class BayesianNet(NodeHelpers):
    """A Bayesian network of named stochastic and deterministic nodes (ZhuSuan's `BayesianNet`).

    Created inside a model-building function, usually without arguments: when the builder runs
    under `MetaBayesianNet.observe(key, **observed)`, the net takes its observations and key from
    there. It can also be created directly with `BayesianNet(observed={...}, key=key)`.

    Node helpers (`bn.normal`, `bn.bernoulli`, ... one per entry of `ppl.nodes.NODE_TABLE`, plus
    ZhuSuan's alternative names such as `bn.gumbel_softmax`) keep ZhuSuan's parameter names, take
    `group_ndims` and `n_samples` (and `dtype` for discrete nodes), and return the node's value as a
    plain `jax.Array`; `bn[name]` returns the `StochasticTensor` record.

    Args:
      observed: maps node names to observed values.
      key: a JAX PRNG key for the nodes that must be sampled; node `name` draws with
        `node_key(key, name)`. May be None when every stochastic node is observed.

    Example:
      >>> bn = BayesianNet(key=jax.random.key(0))
      >>> z = bn.normal("z", jnp.zeros(3), std=1., group_ndims=1, n_samples=5)
      >>> bn.log_joint().shape
      (5,)
    """

    def __init__(self, observed: Mapping[str, Any] | None = None, key: jax.Array | None = None):
        stack = _context_stack()
        model_mode = None
        if observed is None and key is None and stack:
            observed, key, model_mode = stack[-1]
        self._observed = dict(observed or {})
        self._key = key
        self._out_of_support = checks.get_out_of_support(model_mode)
        self._nodes: dict[str, StochasticTensor | DeterministicTensor] = {}
        self._digests: dict[tuple[int, int], str] = {}
        self._log_joint_fn: Callable[[BayesianNet], jax.Array] | None = None
        self._meta_bn: Any = None     # set by MetaBayesianNet.observe, for rebuild()

    # ---------------------------------------------------------------- node creation
    def stochastic(self, name: str, distribution: dist.Distribution | Distribution, *,
                   group_ndims: int | None = None, n_samples: int | None = None,
                   is_reparameterized: bool | None = None, use_path_derivative: bool | None = None,
                   dtype: DTypeLike | None = None) -> jax.Array:
        """Adds a stochastic node following a numpyro distribution or a ZhuSuan-style one.

        Args:
          name: the node's name, unique in this net.
          distribution: a numpyro distribution with `batch_shape` B and `event_shape` E, or a
            `ppl.distributions.Distribution` (its `group_ndims`, `is_reparameterized`,
            `use_path_derivative` and `dtype` are used; those given here override them).
          group_ndims: how many rightmost axes of B the node's `log_prob` sums over (default 0).
          n_samples: if an int, draw that many samples along a new leading axis.
          is_reparameterized: whether gradients flow through a sampled value; defaults to
            `distribution.has_rsample`. False stops gradients through the sample.
          use_path_derivative: evaluate `log_prob` with stopped distribution parameters.
          dtype: for a discrete distribution, the dtype samples are cast to.

        Returns:
          The node's value: the observation if `name` is observed, else a sample of shape
          `[n_samples, *B, *E]` (`[*B, *E]` when `n_samples` is None); inside a
          `ppl.substitute` block, the value the block gives the node, if any.

        Raises:
          ValueError: a duplicate name; `group_ndims` larger than the rank of B; an observation
            whose shape does not broadcast with `[n_samples, *B, *E]`, or (when concrete) holds NaN
            or inf, or lies outside the support under `ppl.set_out_of_support("error")`; a node
            that must be sampled but the net has no key.
          TypeError: an observation of the wrong kind (complex, non-numeric, or a float for a
            categorical node), `is_reparameterized=True` for a distribution that cannot be
            reparameterised, or `dtype=` for a continuous distribution.
        Warns:
          ppl.OutOfSupportWarning: a concrete observation outside the support (the default mode).
        """
        self._check_new_name(name)
        where = f"node {name!r}"
        zhusuan_dist = distribution if isinstance(distribution, Distribution) else None
        if zhusuan_dist is not None:
            distribution = zhusuan_dist.distribution
            group_ndims = _first(group_ndims, zhusuan_dist.group_ndims)
            is_reparameterized = _first(is_reparameterized, zhusuan_dist.is_reparameterized)
            use_path_derivative = _first(use_path_derivative, zhusuan_dist.use_path_derivative)
            dtype = _first(dtype, zhusuan_dist.sample_dtype)
        group_ndims = check_group_ndims(where, distribution, 0 if group_ndims is None else group_ndims)
        n_samples = _check_n_samples(where, n_samples)
        is_reparameterized = resolve_reparameterized(where, distribution, is_reparameterized)
        dtype = check_sample_dtype(where, distribution, dtype)
        sample_shape = () if n_samples is None else (n_samples,)
        expected = sample_shape + tuple(distribution.batch_shape) + tuple(distribution.event_shape)
        is_observed = name in self._observed
        value = None
        if is_observed:
            value = checks.check_observation(name, self._observed[name], distribution, expected,
                                             self._out_of_support, float_indices=_is_float(dtype))
        if substitution.is_active():
            site = NodeSite(name, distribution, value, expected, is_observed, n_samples, group_ndims, dtype)
            value = _first(substitution.replacement(site), value)
            value = None if value is None else jnp.asarray(value)
        if value is None:
            value = self._sample(name, distribution, sample_shape, is_reparameterized, dtype)
        self._nodes[name] = StochasticTensor(
            name, value, distribution, group_ndims=group_ndims, n_samples=n_samples,
            is_observed=is_observed, is_reparameterized=is_reparameterized,
            use_path_derivative=bool(use_path_derivative), zhusuan_dist=zhusuan_dist)
        return value

    def _sample(self, name, distribution, sample_shape, is_reparameterized, dtype):
        if self._key is None:
            raise ValueError(f"node {name!r} is not observed and must be sampled, but no key was given: "
                             "pass a key, e.g. model.observe(jax.random.key(0), ...)")
        value = distribution.sample(node_key(self._key, name), sample_shape)
        if dtype is not None:
            value = value.astype(dtype)
        return value if is_reparameterized else jax.lax.stop_gradient(value)

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
        if substitution.is_active():
            site = NodeSite(name, None, value, value.shape, False)
            value = jnp.asarray(_first(substitution.replacement(site), value))
        self._nodes[name] = DeterministicTensor(name, value)
        return value

    def _check_new_name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a node name must be a str, got {type(name).__name__}: {name!r}")
        if name in self._nodes:
            raise ValueError(f"duplicate node name {name!r}: every node in a BayesianNet needs its "
                             "own name")
        digest = keys.name_digest(name)
        other = self._digests.setdefault(digest, name)
        if other != name:
            raise ValueError(f"node names {other!r} and {name!r} have the same 64-bit digest, so "
                             "they would draw with the same key; rename one of them")

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

    def get(self, name_or_names: str | Sequence[str]
            ) -> StochasticTensor | DeterministicTensor | list[StochasticTensor | DeterministicTensor]:
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

    def cond_log_prob(self, name_or_names: str | Sequence[str]) -> jax.Array | list[jax.Array]:
        """Log-density of one node given its parents (`group_ndims` applied), or a list of them.

        Raises:
          TypeError: a name refers to a deterministic node.
        """
        if not isinstance(name_or_names, str):
            return [self._cond_log_prob(name) for name in name_or_names]
        return self._cond_log_prob(name_or_names)

    def _cond_log_prob(self, name: str) -> jax.Array:
        node = self[name]
        if not isinstance(node, StochasticTensor):
            raise TypeError(f"node {name!r} is deterministic and has no log-density")
        return node.log_prob

    def outputs(self, name_or_names: str | Sequence[str]) -> jax.Array | list[jax.Array]:
        """The value of one node, or a list of values (ZhuSuan's `outputs`; see also `get`)."""
        if isinstance(name_or_names, str):
            return self[name_or_names].value
        return [self[name].value for name in name_or_names]

    def local_log_prob(self, name_or_names: str | Sequence[str]) -> jax.Array | list[jax.Array]:
        """Alias of `cond_log_prob` (ZhuSuan's older name)."""
        return self.cond_log_prob(name_or_names)

    def query(self, name_or_names: str | Sequence[str], outputs: bool = False,
              local_log_prob: bool = False) -> tuple[jax.Array, ...] | list[tuple[jax.Array, ...]]:
        """Values and/or log-densities of nodes, shaped as ZhuSuan's `query` returned them.

        Args:
          name_or_names: a node name or a list of names.
          outputs: include each node's value.
          local_log_prob: include each node's log-density (`cond_log_prob`).

        Returns:
          For one name, a tuple of the selected items, e.g. `(value, log_prob)`; for a list of
          names, a list with one such tuple per name.

        Raises:
          ValueError: neither `outputs` nor `local_log_prob` is selected.
          KeyError / TypeError: an unknown name, or a deterministic node with `local_log_prob`.

        Example:
          >>> [(z, log_pz), (x, log_px)] = bn.query(["z", "x"], outputs=True, local_log_prob=True)
        """
        if not (outputs or local_log_prob):
            raise ValueError("query: select outputs=True and/or local_log_prob=True")
        names = [name_or_names] if isinstance(name_or_names, str) else list(name_or_names)
        rows = [tuple(([self[name].value] if outputs else [])
                      + ([self._cond_log_prob(name)] if local_log_prob else [])) for name in names]
        return rows[0] if isinstance(name_or_names, str) else rows

    def log_joint(self) -> jax.Array:
        """log p of every stochastic node, summed with broadcasting (right-aligned shapes).

        If the net came from a `MetaBayesianNet` with a `log_joint_fn`, returns `log_joint_fn(bn)`.

        Raises:
          ValueError: the nodes' log-densities do not broadcast (the message lists each node's
            shape).
        """
        if self._log_joint_fn is not None:
            return self._log_joint_fn(self)
        return self.default_log_joint()

    def default_log_joint(self) -> jax.Array:
        """The sum of every stochastic node's `log_prob`, ignoring any `log_joint_fn` override."""
        return sum_log_probs({name: node.log_prob for name, node in self.stochastic_nodes().items()})

    def rebuild(self) -> BayesianNet:
        """Runs the builder that made this net again, with the same key and observations.

        The same key gives the same samples; inside a `ppl.substitute` block, the net is rebuilt
        with some node values replaced (this is how `inference` evaluates a variational net at
        each value of an enumerated latent).

        Raises:
          ValueError: the net was not made by `MetaBayesianNet.observe`.
        """
        if self._meta_bn is None:
            raise ValueError("this BayesianNet was not made by MetaBayesianNet.observe, so it cannot be "
                             "rebuilt: build it with a @ppl.meta_bayesian_net builder, e.g. "
                             "build_q(...).observe(key)")
        return self._meta_bn.observe(self._key, **self._observed)

    def __repr__(self) -> str:
        return f"BayesianNet({list(self._nodes)})"


def sum_log_probs(terms: Mapping[str, jax.Array] | Sequence[jax.Array], what: str = "log_joint") -> jax.Array:
    """Sums log-density arrays (named, or a sequence) with right-aligned broadcasting; `[]` zeros
    when there are none.

    Raises:
      ValueError: the shapes do not broadcast; the message names every term and its shape.
    """
    if not isinstance(terms, Mapping):
        terms = {f"term {i}": term for i, term in enumerate(terms)}
    if not terms:
        return jnp.zeros(())
    shapes = {name: jnp.shape(term) for name, term in terms.items()}
    try:
        shape = jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{name!r} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{what}: the log-densities of the nodes do not broadcast together: {listed}; "
                         "sum a node's batch axes with group_ndims, or align the particle axes "
                         "(n_samples)") from None
    return functools.reduce(jnp.add, [jnp.broadcast_to(t, shape) for t in terms.values()])


def _first(given, fallback):
    return fallback if given is None else given


def _check_n_samples(where, n_samples):
    if n_samples is not None and (not _is_int(n_samples) or n_samples < 1):
        raise ValueError(f"{where}: n_samples must be a positive int or None, got {n_samples!r}")
    return None if n_samples is None else int(n_samples)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_float(dtype) -> bool:
    return dtype is not None and np.dtype(dtype).kind == "f"


def _make_helper(method: str, spec: NodeSpec) -> Callable[..., jax.Array]:
    make = spec.make_distribution

    def helper(self: BayesianNet, name: str, *args: Any, group_ndims: int = 0, n_samples: int | None = None,
               is_reparameterized: bool | None = None, use_path_derivative: bool = False,
               dtype: DTypeLike | None = None, **kwargs: Any) -> jax.Array:
        try:
            distribution = make(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(f"node {name!r} ({method}): {error}") from None
        return self.stochastic(name, distribution, group_ndims=group_ndims, n_samples=n_samples,
                               is_reparameterized=is_reparameterized,
                               use_path_derivative=use_path_derivative, dtype=dtype)

    helper.__name__ = helper.__qualname__ = method
    helper.__doc__ = (
        f"Adds a stochastic node (ZhuSuan's `{spec.zhusuan_name}`): {make.__doc__}\n\n"
        f"Call as `bn.{method}(name, ...)` with the parameters of `ppl.nodes.{make.__name__}`, plus\n"
        "`group_ndims`, `n_samples`, `is_reparameterized`, `use_path_derivative` and (discrete\n"
        "nodes) `dtype` as in `BayesianNet.stochastic`. Returns the node's value; see\n"
        "`BayesianNet.stochastic` for the shapes and the errors raised.")
    return helper


for _method, _spec in NODE_TABLE.items():
    setattr(BayesianNet, _method, _make_helper(_method, _spec))
for _alias, (_method, _) in ZHUSUAN_ALIASES.items():
    setattr(BayesianNet, _alias, getattr(BayesianNet, _method))
del _method, _spec, _alias
