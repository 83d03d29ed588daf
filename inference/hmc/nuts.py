"""The No-U-Turn Sampler's transition: multinomial, biased progressive, generalised U-turn (as in Stan).

One transition draws a momentum and doubles a trajectory in random directions (depth j adds a
subtree of 2^j leapfrog steps) until the trajectory turns back on itself, a step diverges, or
`max_tree_depth` doublings are done; the next state is drawn from the trajectory's points with
weights exp(-H).

- **Multinomial, biased progressive sampling** (Betancourt 2017, appendix A): inside a subtree,
  each new point replaces the subtree's proposal with probability w_point / w_subtree (so the
  proposal is a multinomial draw from the subtree); a completed subtree replaces the trajectory's
  proposal with probability min(1, w_subtree / w_old), which favours the new half.
- **Generalised U-turn criterion** with Stan's extra checks: a (sub)tree made of halves A and B,
  with summed momenta rho, is turning unless p#_first . rho > 0 and p#_last . rho > 0 (p# = M^{-1}
  p), and the same holds for A extended by B's first point and for B extended by A's last point.
  Every subtree of every level is checked, as in Stan's recursion.
- **Iterative**: one `lax.while_loop` over leapfrog steps, with no Python recursion. The U-turn
  checks of all levels that end at the current step use per-level checkpoints (each level's
  first momentum, its p#, the summed momentum before it, and the previous block's last momentum),
  updated by bit arithmetic on the step's index in its subtree. So it jits, and vmaps over chains.

The transition reuses `velocity_verlet` (the gradient is cached between steps: one gradient
evaluation per leapfrog step), `gaussian_euclidean` and the HMC kernel's divergence rule.

Random numbers: `key` splits into `key_momentum, key_tree`; depth j uses the three keys of
`split(fold_in(key_tree, j), 3)`: the direction (Bernoulli(1/2), True = forward in time), the
subtree-vs-trajectory draw, and `fold_in(., k)` for the draw at the subtree's k-th step.

References:
  Hoffman and Gelman, `The No-U-Turn Sampler <https://arxiv.org/abs/1111.4246>`_, JMLR 2014;
  Betancourt, `A Conceptual Introduction to Hamiltonian Monte Carlo
  <https://arxiv.org/abs/1701.02434>`_, 2017 (appendix A: multinomial sampling, the generalised
  criterion);
  Stan development team, `base_nuts.hpp
  <https://github.com/stan-dev/stan/blob/develop/src/stan/mcmc/hmc/nuts/base_nuts.hpp>`_ (the
  checks across subtrees);
  Phan, Pradhan and Jankowiak, `Composable Effects for Flexible and Accelerated Probabilistic
  Programming in NumPyro <https://arxiv.org/abs/1912.11554>`_, 2019 (iterative tree building).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from inference.hmc.integrators import IntegratorState, velocity_verlet
from inference.hmc.kernel import HMCState, safe_energy_change
from inference.hmc.metrics import gaussian_euclidean

__all__ = ["NUTSInfo", "build_kernel"]


class NUTSInfo(NamedTuple):
    """Diagnostics of one NUTS transition (all shape `[]`).

    Attributes:
      acceptance_rate: Stan's acceptance statistic: the mean of min(1, exp(-energy change)) over
        every leapfrog step of the transition, rejected subtrees included (what step-size
        adaptation targets).
      is_divergent: a step's energy error exceeded `divergence_threshold` nats (or was not finite).
      energy: the Hamiltonian -log p + K of the returned point (nats).
      tree_depth: doublings of the trajectory that were kept (0 .. max_tree_depth).
      n_leapfrogs: leapfrog steps taken (gradient evaluations), rejected subtrees included.
      is_turning: the transition ended on a U-turn (not on divergence or the depth limit).
    """

    acceptance_rate: jax.Array
    is_divergent: jax.Array
    energy: jax.Array
    tree_depth: jax.Array
    n_leapfrogs: jax.Array
    is_turning: jax.Array


class _Proposal(NamedTuple):
    position: jax.Array   # [d], flat
    log_joint: jax.Array  # []
    grad: jax.Array       # [d]
    energy: jax.Array     # []


class _Tree(NamedTuple):
    """The while loop's carry: the trajectory so far, the subtree being built, the totals."""

    left: IntegratorState        # backward end of the trajectory (flat arrays)
    right: IntegratorState       # forward end
    left_sharp: jax.Array        # M^{-1} p at the ends, [d]
    right_sharp: jax.Array
    rho: jax.Array               # summed momentum of the trajectory, [d]
    log_weight: jax.Array        # log sum exp(H0 - H) over the trajectory
    proposal: _Proposal
    depth: jax.Array             # doublings kept; the subtree being built has 2^depth steps
    current: IntegratorState     # the subtree's last point (where integration continues)
    leaf: jax.Array              # steps taken in this subtree
    sub_rho: jax.Array
    sub_log_weight: jax.Array
    sub_proposal: _Proposal
    start_p: jax.Array           # [L, d]: momentum at the start of the current level-l block
    start_sharp: jax.Array       # [L, d]: its M^{-1} p
    start_rho: jax.Array         # [L, d]: the subtree's summed momentum before that block
    end_p: jax.Array             # [L, d]: momentum at the end of the last completed level-l block
    end_sharp: jax.Array
    n_leapfrogs: jax.Array
    sum_accept: jax.Array
    is_divergent: jax.Array
    is_turning: jax.Array
    is_done: jax.Array


def _criterion(sharp_a, sharp_b, rho):
    """Not turning: both ends' velocities point along the summed momentum (Betancourt 2017)."""
    return (jnp.dot(sharp_a, rho) > 0) & (jnp.dot(sharp_b, rho) > 0)


def _select(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _level_checks(tree: _Tree, k, momentum, sharp, sub_rho):
    """Updates the checkpoints for step `k` of the subtree and runs the U-turn checks of every
    level whose block ends at `k`. Returns `(start_p, start_sharp, start_rho, end_p, end_sharp,
    is_turning)`."""
    n_levels = tree.start_p.shape[0]
    masks = (jnp.left_shift(1, jnp.arange(n_levels, dtype=k.dtype)) - 1)
    starts = ((k & masks) == 0)[:, None]           # level-l blocks that begin at step k
    completes = ((k + 1) & masks) == 0             # ... and that end at step k
    rho_before = sub_rho - momentum
    start_p = jnp.where(starts, momentum, tree.start_p)
    start_sharp = jnp.where(starts, sharp, tree.start_sharp)
    start_rho = jnp.where(starts, rho_before, tree.start_rho)
    # level l >= 1 ending at k: halves A (first) and B (second, whose level-(l-1) block began last)
    rho_ab = sub_rho - start_rho[1:]
    rho_a_ext = start_rho[:-1] - start_rho[1:] + start_p[:-1]          # A and B's first point
    rho_b_ext = sub_rho - start_rho[:-1] + tree.end_p[:-1]             # A's last point and B
    dot = lambda a, b: jnp.sum(a * b, axis=-1)
    ok = ((dot(start_sharp[1:], rho_ab) > 0) & (rho_ab @ sharp > 0)
          & (dot(start_sharp[1:], rho_a_ext) > 0) & (dot(start_sharp[:-1], rho_a_ext) > 0)
          & (dot(tree.end_sharp[:-1], rho_b_ext) > 0) & (rho_b_ext @ sharp > 0))
    is_turning = jnp.any(completes[1:] & ~ok)
    end_p = jnp.where(completes[:, None], momentum, tree.end_p)
    end_sharp = jnp.where(completes[:, None], sharp, tree.end_sharp)
    return start_p, start_sharp, start_rho, end_p, end_sharp, is_turning


def build_kernel(max_tree_depth: int = 10, divergence_threshold: float = 1000.0):
    """Returns the NUTS transition `kernel`.

    Args:
      max_tree_depth: most doublings per transition (at most 2^max_tree_depth - 1 leapfrog steps).
      divergence_threshold: energy error (nats) above which a step is divergent; it ends the
        transition, and the subtree it belongs to is not sampled from.

    Returns:
      `kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix) -> (HMCState, NUTSInfo)`,
      where `step_size` is a scalar and `inverse_mass_matrix` has shape `[d]` or `[d, d]` over the
      raveled position of d scalars. One chain per call; batch chains with `jax.vmap`.

    Raises:
      ValueError: `max_tree_depth` is not a positive int.

    Example:
      >>> kernel = build_kernel()
      >>> log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
      >>> state = inference.hmc.init(jnp.zeros(3), log_joint)
      >>> state, info = jax.jit(kernel, static_argnums=2)(key, state, log_joint, 0.5, jnp.ones(3))
      >>> info.tree_depth, info.n_leapfrogs

    References:
      See the module docstring.
    """
    if not isinstance(max_tree_depth, int) or isinstance(max_tree_depth, bool) or max_tree_depth < 1:
        raise ValueError(f"max_tree_depth must be a positive int, got {max_tree_depth!r}")

    def kernel(key, state: HMCState, log_joint_fn: Callable, step_size, inverse_mass_matrix):
        flat, unravel = ravel_pytree(state.position)
        grad, _ = ravel_pytree(state.log_joint_grad)
        dtype = flat.dtype
        metric = gaussian_euclidean(jnp.asarray(inverse_mass_matrix, dtype))
        step = velocity_verlet(lambda x: log_joint_fn(unravel(x)), metric.velocity)
        key_momentum, key_tree = jax.random.split(key)
        draws = _depth_draws(key_tree, max_tree_depth, dtype)
        momentum = metric.sample_momentum(key_momentum, flat)
        start = IntegratorState(flat, momentum, jnp.asarray(state.log_joint, dtype), grad)
        sharp = metric.velocity(momentum)
        energy0 = -start.log_joint + 0.5 * jnp.dot(momentum, sharp)
        body = functools.partial(_extend, step=step, velocity=metric.velocity, energy0=energy0,
                                 step_size=jnp.asarray(step_size, dtype), draws=draws,
                                 max_tree_depth=max_tree_depth, divergence_threshold=divergence_threshold)
        tree = lax.while_loop(lambda t: ~t.is_done, body,
                              _initial_tree(start, sharp, energy0, max_tree_depth))
        proposal = tree.proposal
        new_state = HMCState(unravel(proposal.position), proposal.log_joint, unravel(proposal.grad))
        info = NUTSInfo(tree.sum_accept / tree.n_leapfrogs.astype(dtype), tree.is_divergent, proposal.energy,
                        tree.depth, tree.n_leapfrogs, tree.is_turning)
        return new_state, info

    return kernel


class _Draws(NamedTuple):
    goes_right: jax.Array    # [L] bool: direction of the subtree at each depth
    log_u_merge: jax.Array   # [L]: log U(0, 1) for subtree-vs-trajectory at each depth
    leaf_keys: jax.Array     # [L] keys: fold_in(., k) draws the k-th step's multinomial update


def _depth_draws(key_tree, n_levels: int, dtype) -> _Draws:
    keys = jax.vmap(lambda j: jax.random.split(jax.random.fold_in(key_tree, j), 3))(jnp.arange(n_levels))
    goes_right = jax.vmap(jax.random.bernoulli)(keys[:, 0])
    log_u = jnp.log(jax.vmap(lambda k: jax.random.uniform(k, dtype=dtype))(keys[:, 1]))
    return _Draws(goes_right, log_u, keys[:, 2])


def _extend(tree: _Tree, *, step, velocity, energy0, step_size, draws: _Draws, max_tree_depth,
            divergence_threshold) -> _Tree:
    """One leapfrog step of the subtree being built; merges the subtree when it is complete."""
    go_right = draws.goes_right[tree.depth]
    new = step(tree.current, jnp.where(go_right, step_size, -step_size))
    sharp = velocity(new.momentum)
    delta = safe_energy_change(energy0, -new.log_joint + 0.5 * jnp.dot(new.momentum, sharp))
    is_divergent = delta > divergence_threshold
    # the subtree's proposal: a multinomial draw over its points, updated one point at a time
    sub_log_weight = jnp.logaddexp(tree.sub_log_weight, -delta)
    u = jax.random.uniform(jax.random.fold_in(draws.leaf_keys[tree.depth], tree.leaf), dtype=delta.dtype)
    point = _Proposal(new.position, new.log_joint, new.log_joint_grad, energy0 + delta)
    sub_proposal = _select(jnp.log(u) < -delta - sub_log_weight, point, tree.sub_proposal)
    sub_rho = tree.sub_rho + new.momentum
    start_p, start_sharp, start_rho, end_p, end_sharp, sub_turning = _level_checks(
        tree, tree.leaf, new.momentum, sharp, sub_rho)
    leaf = tree.leaf + 1
    stop = is_divergent | sub_turning
    merge = (leaf == jnp.left_shift(1, tree.depth)) & ~stop
    merged = _merge(tree, new, sharp, go_right, sub_rho, sub_log_weight, sub_proposal, start_p[-1],
                    start_sharp[-1], draws.log_u_merge[tree.depth])
    depth = tree.depth + merge.astype(tree.depth.dtype)
    is_done = stop | (merge & (merged.is_turning | (depth >= max_tree_depth)))
    # the next subtree grows from the trajectory's end in its direction
    restart = merge & ~is_done
    next_right = draws.goes_right[jnp.minimum(depth, max_tree_depth - 1)]
    current = _select(restart, _select(next_right, merged.right, merged.left), new)
    trajectory = _select(merge, merged[:7], tuple(tree[:7]))
    return _Tree(*trajectory, depth=depth, current=current, leaf=jnp.where(restart, 0, leaf),
                 sub_rho=jnp.where(restart, jnp.zeros_like(sub_rho), sub_rho),
                 sub_log_weight=jnp.where(restart, -jnp.inf, sub_log_weight), sub_proposal=sub_proposal,
                 start_p=start_p, start_sharp=start_sharp, start_rho=start_rho, end_p=end_p,
                 end_sharp=end_sharp, n_leapfrogs=tree.n_leapfrogs + 1,
                 sum_accept=tree.sum_accept + jnp.exp(jnp.minimum(-delta, 0.0)),
                 is_divergent=is_divergent, is_turning=(sub_turning & ~is_divergent) | (merge & merged.is_turning),
                 is_done=is_done)


class _Merged(NamedTuple):
    left: IntegratorState
    right: IntegratorState
    left_sharp: jax.Array
    right_sharp: jax.Array
    rho: jax.Array
    log_weight: jax.Array
    proposal: _Proposal
    is_turning: jax.Array


def _merge(tree: _Tree, new: IntegratorState, sharp, go_right, sub_rho, sub_log_weight, sub_proposal,
           first_p, first_sharp, log_u) -> _Merged:
    """The trajectory extended by the completed subtree that ends at `new` (used when it is valid).

    Biased progressive sampling: the subtree's proposal replaces the trajectory's with probability
    min(1, w_subtree / w_old). Then the U-turn checks of the merged trajectory: the whole of it,
    the old part with the subtree's first point (`first_p`, `first_sharp`), and the subtree with
    the old part's adjacent end.
    """
    proposal = _select(log_u < sub_log_weight - tree.log_weight, sub_proposal, tree.proposal)
    left = _select(go_right, tree.left, new)
    right = _select(go_right, new, tree.right)
    left_sharp = jnp.where(go_right, tree.left_sharp, sharp)
    right_sharp = jnp.where(go_right, sharp, tree.right_sharp)
    far_sharp = jnp.where(go_right, tree.left_sharp, tree.right_sharp)       # old end away from the subtree
    adjacent_p = jnp.where(go_right, tree.right.momentum, tree.left.momentum)  # old end next to it
    adjacent_sharp = jnp.where(go_right, tree.right_sharp, tree.left_sharp)
    rho = tree.rho + sub_rho
    is_turning = ~(_criterion(far_sharp, sharp, rho)
                   & _criterion(far_sharp, first_sharp, tree.rho + first_p)
                   & _criterion(adjacent_sharp, sharp, sub_rho + adjacent_p))
    return _Merged(left, right, left_sharp, right_sharp, rho, jnp.logaddexp(tree.log_weight, sub_log_weight),
                   proposal, is_turning)


def _initial_tree(start: IntegratorState, sharp, energy0, n_levels: int) -> _Tree:
    """The trajectory of the starting point alone, with no subtree begun."""
    d = start.position.shape[0]
    dtype = start.position.dtype
    proposal = _Proposal(start.position, start.log_joint, start.log_joint_grad, energy0)
    levels = jnp.zeros((n_levels, d), dtype)
    zero = jnp.zeros((), dtype)
    false = jnp.zeros((), bool)
    return _Tree(start, start, sharp, sharp, start.momentum, zero, proposal, jnp.zeros((), jnp.int32),
                 start, jnp.zeros((), jnp.int32), jnp.zeros((d,), dtype), jnp.full((), -jnp.inf, dtype),
                 proposal, levels, levels, levels, levels, levels, jnp.zeros((), jnp.int32), zero, false, false,
                 false)
