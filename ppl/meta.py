"""`MetaBayesianNet` and the `meta_bayesian_net` decorator: a model waiting for its observations."""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any, Callable

import jax

from ppl import checks
from ppl.bayesian_net import BayesianNet, observe_context

if TYPE_CHECKING:
    from ppl.graph import ModelGraph

__all__ = ["MetaBayesianNet", "meta_bayesian_net"]

LogJointFn = Callable[[BayesianNet], jax.Array]


class MetaBayesianNet:
    """A model builder bound to its arguments; `observe` runs it (ZhuSuan's `MetaBayesianNet`).

    Nothing runs when a `MetaBayesianNet` is created. Each call to `observe` re-runs the builder
    with the given observations and key, so one meta net serves the model, the variational net
    and every inference algorithm that conditions it differently.

    Args:
      builder: a function that creates a `ppl.BayesianNet`, adds nodes and returns it.
      args, kwargs: the arguments the builder is called with.
      scope, reuse_variables: ZhuSuan's TensorFlow variable-scope options, accepted so that ported
        code runs, and unnecessary in JAX: parameters are explicit arguments (pytrees), so there are
        no variables to scope or reuse.
      log_joint_fn: None, or a function `fn(bn) -> array` that replaces `BayesianNet.log_joint` for
        every net this meta net builds (e.g. to rescale a minibatch likelihood by N / batch size).
      out_of_support: this model's mode for out-of-support observations ("warn", "error",
        "ignore"), or None for the setting in force (see `ppl.set_out_of_support`).

    Attributes:
      log_joint_fn: the override above (settable). `log_joint` is ZhuSuan's name for the same
        attribute (`model.log_joint = fn` sets it); `with_log_joint(fn)` returns a copy with it.

    Raises:
      TypeError: a `log_joint_fn` that is neither callable nor None.
      ValueError: an unknown `out_of_support` mode.
    """

    def __init__(self, builder: Callable[..., BayesianNet], args: tuple | None = (),
                 kwargs: dict | None = None, scope: str | None = None, reuse_variables: bool = False, *,
                 log_joint_fn: LogJointFn | None = None, out_of_support: str | None = None):
        self._builder = builder
        self._args = tuple(args or ())
        self._kwargs = dict(kwargs or {})
        self.scope = scope
        self.reuse_variables = bool(reuse_variables)
        self.log_joint_fn = log_joint_fn
        self._out_of_support = None if out_of_support is None else checks.check_mode(out_of_support)

    @property
    def log_joint_fn(self) -> LogJointFn | None:
        """The `fn(bn) -> array` that replaces `BayesianNet.log_joint`, or None."""
        return self._log_joint_fn

    @log_joint_fn.setter
    def log_joint_fn(self, fn: LogJointFn | None) -> None:
        if fn is not None and not callable(fn):
            raise TypeError(f"log_joint_fn of {self.name!r} must be a function of the BayesianNet "
                            f"(or None), got {type(fn).__name__}")
        self._log_joint_fn = fn

    @property
    def log_joint(self) -> LogJointFn | None:
        """ZhuSuan's name for `log_joint_fn`: `model.log_joint = fn` sets the override."""
        return self._log_joint_fn

    @log_joint.setter
    def log_joint(self, fn: LogJointFn | None) -> None:
        self.log_joint_fn = fn

    def with_log_joint(self, fn: LogJointFn | None) -> MetaBayesianNet:
        """A copy of this meta net whose `log_joint_fn` is `fn` (this one is unchanged).

        Example:
          >>> scaled = model.with_log_joint(lambda bn: bn["w"].log_prob + 10. * bn["y"].log_prob)
        """
        new = copy.copy(self)
        new.log_joint_fn = fn
        return new

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
        with observe_context(observed, key, self._out_of_support):
            bn = self._builder(*self._args, **self._kwargs)
        if not isinstance(bn, BayesianNet):
            raise TypeError(f"the model builder {self.name!r} must return a ppl.BayesianNet, got "
                            f"{type(bn).__name__}")
        unknown = sorted(set(observed) - set(bn))
        if unknown:
            raise ValueError(f"observed {unknown} but the model {self.name!r} has no such node; "
                             f"its nodes are {list(bn)}")
        bn._log_joint_fn = self._log_joint_fn
        bn._meta_bn = self
        return bn

    def render(self, /, **observed: Any) -> ModelGraph:
        """The graph of this model (see `ppl.render`): `self.render(x=x).save("model.svg")`.

        Args:
          **observed: node name -> value (observed nodes are shaded).

        Returns:
          A `ppl.ModelGraph`; `.source` is its DOT text.
        """
        from ppl.graph import render
        return render(self, **observed)

    @property
    def name(self) -> str:
        """The builder function's name (used in error messages)."""
        return getattr(self._builder, "__name__", repr(self._builder))

    def __repr__(self) -> str:
        return f"MetaBayesianNet({self.name})"


def meta_bayesian_net(builder: Callable[..., BayesianNet] | str | None = None, /, *,
                      log_joint_fn: LogJointFn | None = None, scope: str | None = None,
                      reuse_variables: bool = False, out_of_support: str | None = None) -> Callable[..., Any]:
    """Decorates a model builder so that calling it returns a `MetaBayesianNet`.

    Works bare (`@meta_bayesian_net`), called (`@meta_bayesian_net()`), with options
    (`@meta_bayesian_net(log_joint_fn=fn)`), and as a function (`meta_bayesian_net(builder,
    log_joint_fn=fn)`). ZhuSuan's `scope=` and `reuse_variables=` are accepted (also a scope name
    as the first argument, as ZhuSuan's positional `scope`) and do nothing: JAX has no variable
    scopes; parameters are explicit arguments.

    Args:
      builder: the model-building function.
      log_joint_fn: the `fn(bn) -> array` override every built net uses (see `MetaBayesianNet`).
      scope, reuse_variables: accepted for ZhuSuan compatibility; unnecessary in JAX.
      out_of_support: this model's mode for out-of-support observations (see
        `ppl.set_out_of_support`), e.g. "ignore" for a Bernoulli likelihood of grey-level pixels.

    Returns:
      The decorated builder (or a decorator, when `builder` is not given).

    Example:
      >>> @meta_bayesian_net
      ... def build(n):
      ...     bn = BayesianNet()
      ...     bn.normal("z", jnp.zeros(n), std=1.)
      ...     return bn
      >>> build(3).observe(jax.random.key(0))["z"].value.shape
      (3,)
    """
    if isinstance(builder, str):          # ZhuSuan's meta_bayesian_net("scope_name")
        builder, scope = None, builder
    options: dict[str, Any] = dict(log_joint_fn=log_joint_fn, scope=scope, reuse_variables=reuse_variables,
                   out_of_support=out_of_support)
    if out_of_support is not None:
        checks.check_mode(out_of_support)
    if builder is None:
        return functools.partial(meta_bayesian_net, **options)

    @functools.wraps(builder)
    def wrapped(*args, **kwargs) -> MetaBayesianNet:
        return MetaBayesianNet(builder, args, kwargs, scope, reuse_variables,
                               log_joint_fn=log_joint_fn, out_of_support=out_of_support)

    wrapped.is_meta_bayesian_net_builder = True  # type: ignore[attr-defined]
    return wrapped
