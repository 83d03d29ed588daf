"""The shared shape of the SG-MCMC samplers: `init`, `update`, `step`, with the gradient plumbing.

A sampler is a small configuration object (optax style) whose methods are pure functions:

- `init(latent) -> State`: the latents `{name: array}` become the starting state.
- `gradient_position(key, state) -> position`: where this step needs the log-joint gradient. It is
  `state.position` for SGLD and PSGLD and the first-order integrators; the second-order integrators
  of SGHMC and SGNHT evaluate it half a step ahead, at `position + momentum / 2` (after resampling
  the momentum with this same `key`).
- `update(key, state, log_joint_grad) -> (State, Info)`: one step from a gradient dict taken at
  `gradient_position(key, state)`, or from a callable `position -> gradient dict`.
- `step(key, state, meta_bn, observed) -> (State, Info)`: the same, with the gradient of the model's
  (minibatch) log-joint taken through the DSL.

Every state is a NamedTuple with `position` and `count` (steps taken, for learning-rate schedules
and momentum resampling); its tree structure, shapes and dtypes never change, so steps scan.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from inference.sgmcmc.gradients import log_joint_grad_fn

__all__ = ["SGMCMC", "check_gradient", "check_learning_rate", "check_latent"]


def check_learning_rate(learning_rate: Any) -> Any:
    """Checks a learning rate: a positive number or a callable schedule `count -> rate`.

    Raises:
      ValueError: a non-positive, NaN or infinite number.
      TypeError: neither a number nor a callable.
    """
    if callable(learning_rate):
        return learning_rate
    if isinstance(learning_rate, numbers.Real) or (hasattr(learning_rate, "shape") and
                                                   jnp.shape(learning_rate) == ()):
        is_concrete = not isinstance(learning_rate, jax.core.Tracer)
        if is_concrete and not (np.isfinite(float(learning_rate)) and float(learning_rate) > 0):
            raise ValueError(f"learning_rate must be a finite positive number, got {learning_rate!r}")
        return learning_rate
    raise TypeError(f"learning_rate must be a positive float or an optax schedule (count -> rate), got "
                    f"{type(learning_rate).__name__}")


def check_latent(latent: Mapping[str, Any]) -> dict[str, jax.Array]:
    """The latents as a dict of floating-point arrays.

    Raises:
      TypeError: `latent` is not a non-empty mapping, or a value is not floating point.
    """
    if not isinstance(latent, Mapping) or not latent:
        raise TypeError(f"latent must be a non-empty dict {{name: array}}, got {latent!r}")
    out = {}
    for name, value in latent.items():
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(f"latent[{name!r}] must be a floating-point array, got dtype {value.dtype}")
        out[name] = jnp.asarray(value, value.dtype)   # not weak-typed: a step keeps the carry's types
    return out


class SGMCMC:
    """Base class: binds a sampler's configuration; subclasses implement `init`, `_update`."""

    def init(self, latent: Mapping[str, Any]) -> Any:  # pragma: no cover - abstract
        """The sampler's state at `latent` (a dict of arrays); see the subclass."""
        raise NotImplementedError

    def _prepare(self, key: jax.Array, state) -> Any:
        """What the step draws or computes before the gradient (e.g. resampled momentum)."""
        return key

    def _position_for_gradient(self, state, prepared) -> dict[str, jax.Array]:
        return state.position

    def gradient_position(self, key: jax.Array, state: Any) -> dict[str, jax.Array]:
        """Where `update(key, state, ...)` needs the log-joint gradient (`state.position` unless
        the integrator looks ahead)."""
        return self._position_for_gradient(state, self._prepare(key, state))

    def _update(self, prepared, state, grads: dict[str, jax.Array]):  # pragma: no cover
        raise NotImplementedError

    def update(self, key: jax.Array, state: Any,
               log_joint_grad: Mapping[str, jax.Array] | Callable) -> tuple[Any, Any]:
        """One step from the log-joint gradient.

        Args:
          key: a JAX PRNG key for this step.
          state: the sampler's state.
          log_joint_grad: the gradient of the (minibatch-rescaled) log-joint, a dict like
            `state.position` evaluated at `gradient_position(key, state)` with the same `key`; or a
            callable `position -> gradient dict`, called there. Not the log-joint itself: wrap a
            log-joint function in `jax.grad`.

        Returns:
          `(state, info)`: the next state (same structure) and the step's diagnostics. When the
          gradient holds NaN or inf the step is rejected: the state is kept (its `count` advances)
          and `info.is_rejected` is True.

        Raises:
          TypeError: `log_joint_grad` is (or returns) a scalar or an array instead of a dict of
            gradients, e.g. a log-joint function.
          ValueError: the gradient's names or shapes differ from the position's.
        """
        prepared = self._prepare(key, state)
        position = self._position_for_gradient(state, prepared)
        grads = self._evaluate(prepared, position, log_joint_grad)
        new_state, info = self._update(prepared, state, grads)
        # a non-finite gradient is never written into the state: the step is rejected (count advances)
        is_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        new_state = jax.tree.map(lambda new, old: jnp.where(is_finite, new, old), new_state, state)
        return new_state._replace(count=state.count + 1), info._replace(is_rejected=~is_finite)

    def _evaluate(self, prepared, position, log_joint_grad):
        """The gradient dict at `position` (checked against it)."""
        if callable(log_joint_grad):
            log_joint_grad = log_joint_grad(position)
        check_gradient(position, log_joint_grad)
        return dict(log_joint_grad)

    def step(self, key: jax.Array, state: Any, meta_bn: Any,
             observed: Mapping[str, Any]) -> tuple[Any, Any]:
        """One step with the gradient of `meta_bn`'s log-joint given `observed` (a minibatch).

        The model's `log_joint` override should rescale the minibatch likelihood by
        `N / batch_size` (see `inference.sgmcmc.gradients.scaled_log_joint`). The position is on
        the unconstrained space (`minibatch_log_joint_fn`): a constrained latent (gamma, beta,
        dirichlet, ...) is held as `biject_to(support).inv(value)`, so no step leaves its support;
        start from `inference.make_log_joint(meta_bn, observed).to_unconstrained(values)` and map
        back with `.to_constrained` (`inference.sgmcmc.sample` does both).

        Args:
          key: a JAX PRNG key.
          state: the sampler's state; `state.position` names the model's latents (unconstrained).
          meta_bn: a `ppl.MetaBayesianNet`.
          observed: `{name: value}` for the observed nodes.

        Returns:
          `(state, info)` as in `update`.
        """
        return self.update(key, state, log_joint_grad_fn(meta_bn, observed))


def check_gradient(position, grads) -> None:
    """Checks that `grads` is a dict of gradients with the names and shapes of `position`.

    Raises:
      TypeError: `grads` is not a mapping (e.g. a scalar log-joint).
      ValueError: different names or shapes.
    """
    if not isinstance(grads, Mapping):
        shape = getattr(grads, "shape", None)
        raise TypeError(
            f"update needs the log-joint's gradient, a dict like the position {sorted(position)} (or a "
            f"function returning one); got {type(grads).__name__}"
            + (f" of shape {tuple(shape)}" if shape is not None else "")
            + ". If this is a log-joint function, pass jax.grad(log_joint_fn) (or use step(...) with a "
              "model).")
    if set(grads) != set(position):
        raise ValueError(f"the gradient names {sorted(grads)} differ from the position's {sorted(position)}")
    for name, value in position.items():
        if jnp.shape(grads[name]) != jnp.shape(value):
            raise ValueError(f"gradient of {name!r} has shape {jnp.shape(grads[name])}, the position "
                             f"{jnp.shape(value)}")
