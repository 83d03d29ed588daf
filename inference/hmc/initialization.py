"""Where MCMC chains start: NumPyro's initialisation strategies, retried until the start is valid.

A strategy says how each latent's starting value is drawn; `initial_state` draws a start for one
chain inside the compiled program and retries (up to `MAX_INIT_TRIES` times, Stan's count) until
the log-joint and its gradient are finite. Each latent is drawn while the model runs
(`ppl.substitute`), so its unconstrained transform is derived at the values already drawn for the
latents before it (a support `U(0, z)` gets a start inside `(0, z)`).

=========================  ==================================================================
strategy                   start of a latent not in `init`
=========================  ==================================================================
`init_to_uniform(r)`       uniform in `[-r, r]` on the unconstrained space (default, r = 2)
`init_to_median(n)`        the median of `n` prior draws (uniform when the prior cannot sample)
`init_to_sample()`         one prior draw (uniform when the prior cannot sample)
`init_to_value(values)`    `values[name]` (constrained space); the others as `init_to_uniform(2)`
=========================  ==================================================================

Example:
  >>> result = NUTS().sample(key, model, {"y": y}, init_strategy=init_to_median(), n_chains=4)

References:
  Phan et al., `Composable Effects for Flexible and Accelerated Probabilistic Programming in NumPyro
  <https://arxiv.org/abs/1912.11554>`_, 2019 (`numpyro.infer.initialization`);
  Stan Development Team, `Stan Reference Manual: Initialization
  <https://mc-stan.org/docs/reference-manual/execution.html#initialization>`_ (100 tries).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.distributions.transforms import biject_to

from inference.hmc import prng
from inference.hmc.driver import trace_once
from inference.hmc.kernel import HMCState
from inference.hmc.kernel import init as hmc_init
from ppl.substitution import substitute

__all__ = ["MAX_INIT_TRIES", "InitStrategy", "init_to_median", "init_to_sample", "init_to_uniform",
           "init_to_value", "initial_state", "initial_states"]

MAX_INIT_TRIES = 100   # as Stan: draws per chain before the start is declared invalid


class InitStrategy(NamedTuple):
    """An initialisation strategy (build one with `init_to_uniform` and friends).

    Attributes:
      kind: "uniform", "median", "sample" or "value".
      radius: the half-width of the uniform box on the unconstrained space (the fallback).
      n_draws: prior draws whose median is taken ("median").
      values: `{latent: value}` in the constrained space ("value"), each of the latent's shape or
        with a leading `[n_chains]` axis.
    """

    kind: str
    radius: float = 2.0
    n_draws: int = 15
    values: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple:
        """What changes the compiled program (the values are traced)."""
        return self.kind, self.radius, self.n_draws

    def __repr__(self) -> str:
        detail = {"uniform": f"radius={self.radius}", "median": f"n_draws={self.n_draws}"}.get(self.kind, "")
        return f"init_to_{self.kind}({detail})"


def init_to_uniform(radius: float = 2.0) -> InitStrategy:
    """Starts each latent uniformly in `[-radius, radius]` on its unconstrained space.

    Args:
      radius: the half-width of the box (unconstrained units), finite and positive.

    Returns:
      An `InitStrategy`.

    Raises:
      ValueError: `radius` is not a finite positive number.

    Example:
      >>> NUTS().sample(key, model, obs, init_strategy=init_to_uniform(0.5))
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.floating)) or not (
            np.isfinite(radius) and radius > 0):
        raise ValueError(f"init_to_uniform: radius must be a finite positive number, got {radius!r}")
    return InitStrategy("uniform", float(radius))


def init_to_median(n_draws: int = 15) -> InitStrategy:
    """Starts each latent at the median of `n_draws` prior draws (uniform in [-2, 2] if it cannot sample).

    Raises:
      ValueError: `n_draws` is not a positive int.
    """
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"init_to_median: n_draws must be a positive int, got {n_draws!r}")
    return InitStrategy("median", n_draws=int(n_draws))


def init_to_sample() -> InitStrategy:
    """Starts each latent at one prior draw (uniform in [-2, 2] if its prior cannot sample)."""
    return InitStrategy("sample")


def init_to_value(values: Mapping[str, Any] | None = None) -> InitStrategy:
    """Starts the latents in `values` there (constrained space); the others as `init_to_uniform()`.

    Args:
      values: `{latent: value}`, each of the latent's shape or with a leading `[n_chains]` axis.

    Raises:
      TypeError: `values` is not a mapping.
    """
    if values is not None and not isinstance(values, Mapping):
        raise TypeError(f"init_to_value needs a dict of latent values, got {type(values).__name__}")
    return InitStrategy("value", values=dict(values or {}))


def _draw(strategy: InitStrategy, key, site, transform, unconstrained_shape, dtype):
    """One latent's unconstrained start under `strategy`."""
    if strategy.kind in ("median", "sample"):
        distribution = site.distribution
        n_extra = len(site.shape) - len(distribution.batch_shape) - len(distribution.event_shape)
        extra = tuple(site.shape[:n_extra])
        try:
            if strategy.kind == "median":
                value = jnp.median(distribution.sample(key, (strategy.n_draws, *extra)), axis=0)
            else:
                value = distribution.sample(key, extra)
            return transform.inv(jnp.asarray(value, dtype))
        except NotImplementedError:   # an improper prior: fall back to the uniform box
            pass
    return prng.uniform(key, unconstrained_shape, dtype, -strategy.radius, strategy.radius)


def initial_state(key: jax.Array, meta_bn: Any, observed: Mapping[str, Any], specs: Mapping[str, Any],
                  values: Mapping[str, Any], strategy: InitStrategy, log_joint_fn: Callable
                  ) -> tuple[HMCState, jax.Array, jax.Array]:
    """One chain's start, retried until the log-joint and its gradient are finite (inside jit).

    Args:
      key: this chain's PRNG key (try t uses `fold_in(key, t)`).
      meta_bn, observed: the model (traced data).
      specs: `{name: LatentSpec}` of the latents.
      values: `{name: constrained value}` fixed for this chain (user's `init`).
      strategy: how the other latents are drawn.
      log_joint_fn: the unconstrained log-joint.

    Returns:
      `(HMCState, is_valid [] bool, n_tries [] int32)`: the last try's state.
    """
    states, is_valid, n_tries = initial_states(jnp.asarray(key)[None], meta_bn, observed, specs,
                                               {name: jnp.asarray(v)[None] for name, v in values.items()},
                                               strategy, log_joint_fn)
    return jax.tree_util.tree_map(lambda x: x[0], states), is_valid[0], n_tries[0]


def initial_states(keys: jax.Array, meta_bn: Any, observed: Mapping[str, Any], specs: Mapping[str, Any],
                   values: Mapping[str, Any], strategy: InitStrategy, log_joint_fn: Callable
                   ) -> tuple[HMCState, jax.Array, jax.Array]:
    """`initial_state` of C chains, retried in lockstep: the same starts as `jax.vmap(initial_state)`.

    Each round draws a try for every chain that has no valid start yet (the others keep theirs),
    until all have one or `MAX_INIT_TRIES` rounds are done. A vmapped `while_loop` computes the same,
    but JAX batches its body several times while tracing it (to find which carries are per-chain).

    Args:
      keys: `[C]` PRNG keys (chain c's try t uses `fold_in(keys[c], t)`).
      meta_bn, observed, specs, strategy, log_joint_fn: as for `initial_state`.
      values: `{name: [C, *shape] constrained values}` fixed per chain (user's `init`).

    Returns:
      `(HMCState [C], is_valid [C] bool, n_tries [C] int32)`: for a chain without a valid start, its
      last try.

    Raises:
      ValueError: `keys` is not `[C]`, or a value in `values` has no leading axis of C (the node and
        the shapes are named).
    """
    names = list(specs)
    if jnp.ndim(keys) != 1 and not (jnp.ndim(keys) == 2 and jnp.shape(keys)[-1] == 2
                                    and jnp.result_type(keys) == jnp.uint32):
        raise ValueError(f"initial_states takes one key per chain, [C]; got keys of shape {jnp.shape(keys)}")
    n_chains = jnp.shape(keys)[0]
    for name, value in values.items():
        if jnp.shape(value)[:1] != (n_chains,):
            raise ValueError(f"initial_states: values[{name!r}] has shape {jnp.shape(value)}, without the "
                             f"leading chain axis of {n_chains} that the keys give")

    def position_at(k, chain_values):
        position = {}

        def substitute_fn(site):
            if site.distribution is None or site.is_observed or site.name not in specs:
                return None
            spec, transform = specs[site.name], biject_to(site.distribution.support)
            if site.name in chain_values:
                value = jnp.asarray(chain_values[site.name], spec.dtype)
                position[site.name] = transform.inv(value)
                return value
            k_site = prng.fold_in(k, names.index(site.name))
            position[site.name] = u = _draw(strategy, k_site, site, transform, spec.unconstrained_shape,
                                            spec.dtype)
            return transform(u)

        with substitute(substitute_fn):
            meta_bn.observe(**observed)
        return {name: position[name] for name in names}

    def attempt(t):
        def one(key, chain_values):
            state = hmc_init(position_at(prng.fold_in(key, t), chain_values), log_joint_fn)
            return state, _is_finite(state)
        return jax.vmap(one)(keys, values)

    n_tries = MAX_INIT_TRIES if set(names) - set(values) else 1   # nothing to redraw: one try
    # every try, the first included, inside the loop: one copy of the model and its gradient in the
    # program (traced once), and the loop starts from a placeholder that no caller sees
    attempt, (state_shapes, ok_shape) = trace_once(attempt, jnp.int32(0))
    zeros = lambda s: jnp.zeros(s.shape, s.dtype)
    start = (jnp.int32(0), jax.tree_util.tree_map(zeros, state_shapes), zeros(ok_shape),
             jnp.zeros(ok_shape.shape, jnp.int32))

    def body(carry):
        t, states, is_valid, tries = carry
        new, new_is_valid = attempt(t)
        retried = ~is_valid
        per_chain = lambda x: jnp.reshape(retried, retried.shape + (1,) * (x.ndim - 1))
        states = jax.tree_util.tree_map(lambda a, b: jnp.where(per_chain(a), a, b), new, states)
        return t + 1, states, is_valid | new_is_valid, jnp.where(retried, t + 1, tries)

    _, states, is_valid, tries = lax.while_loop(lambda c: jnp.any(~c[2]) & (c[0] < n_tries), body, start)
    return states, is_valid, tries


def _is_finite(state: HMCState):
    leaves = [state.log_joint, *jax.tree_util.tree_leaves(state.log_joint_grad),
              *jax.tree_util.tree_leaves(state.position)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
