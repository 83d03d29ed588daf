"""`MetaBayesianNet` and the `meta_bayesian_net` decorator: a model waiting for its observations."""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax

from ppl.bayesian_net import BayesianNet, observe_context

__all__ = ["MetaBayesianNet", "meta_bayesian_net"]


class MetaBayesianNet:
    """A model builder bound to its arguments; `observe` runs it (ZhuSuan's `MetaBayesianNet`).

    Nothing runs when a `MetaBayesianNet` is created. Each call to `observe` re-runs the builder
    with the given observations and key, so one meta net serves the model, the variational net
    and every inference algorithm that conditions it differently.

    Args:
      builder: a function that creates a `ppl.BayesianNet`, adds nodes and returns it.
      args, kwargs: the arguments the builder is called with.

    Attributes:
      log_joint: None, or a function `fn(bn) -> array` that replaces `BayesianNet.log_joint` for
        every net this meta net builds (e.g. to rescale a minibatch likelihood by N / batch size).
    """

    def __init__(self, builder: Callable[..., BayesianNet], args: tuple = (), kwargs: dict | None = None):
        self._builder = builder
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.log_joint: Callable[[BayesianNet], jax.Array] | None = None

    def observe(self, key: jax.Array | None = None, /, **observed: Any) -> BayesianNet:
        """Runs the builder with `observed` nodes fixed and the others sampled with `key`.

        Args:
          key: a JAX PRNG key; may be omitted only when every stochastic node is observed.
          **observed: node name -> value, broadcastable to `[n_samples, *batch, *event]`.

        Returns:
          The `BayesianNet` the builder returned.

        Raises:
          ValueError: an observed name the model does not define (the message lists the model's
            nodes), or any node error raised while building (see `BayesianNet.stochastic`).
          TypeError: the builder does not return a `BayesianNet`.
        """
        with observe_context(observed, key):
            bn = self._builder(*self._args, **self._kwargs)
        if not isinstance(bn, BayesianNet):
            raise TypeError(f"the model builder {self.name!r} must return a ppl.BayesianNet, got "
                            f"{type(bn).__name__}")
        unknown = sorted(set(observed) - set(bn))
        if unknown:
            raise ValueError(f"observed {unknown} but the model {self.name!r} has no such node; "
                             f"its nodes are {list(bn)}")
        bn._log_joint_fn = self.log_joint
        return bn

    @property
    def name(self) -> str:
        """The builder function's name (used in error messages)."""
        return getattr(self._builder, "__name__", repr(self._builder))

    def __repr__(self) -> str:
        return f"MetaBayesianNet({self.name})"


def meta_bayesian_net(builder: Callable[..., BayesianNet] | None = None, /):
    """Decorates a model builder so that calling it returns a `MetaBayesianNet`.

    Works bare (`@meta_bayesian_net`) and called (`@meta_bayesian_net()`).

    Example:
      >>> @meta_bayesian_net
      ... def build(n):
      ...     bn = BayesianNet()
      ...     bn.normal("z", jnp.zeros(n), std=1.)
      ...     return bn
      >>> build(3).observe(jax.random.key(0))["z"].value.shape
      (3,)
    """
    if builder is None:
        return meta_bayesian_net

    @functools.wraps(builder)
    def wrapped(*args, **kwargs) -> MetaBayesianNet:
        return MetaBayesianNet(builder, args, kwargs)

    return wrapped
