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
- **Iterative**, with no Python recursion: an outer `lax.while_loop` over doublings and an inner one
  over the leapfrog steps of the subtree being built. The U-turn checks of all levels that end at
  the current step use per-level checkpoints (each level's first momentum, its p#, the summed
  momentum before it, and the previous block's last momentum), updated by bit arithmetic on the
  step's index in its subtree. So it jits, and vmaps over chains.
- **Chains in lockstep** (`kernel.batched`): every chain still building its trajectory is at the
  same doubling j and the same step k of its subtree, so C chains share one loop, one step index
  and one level-check loop; a chain that has stopped (U-turn, divergence, depth limit) freezes its
  counts while the others go on. With `jax.vmap` of the one-chain kernel instead, every loop-carried
  array is selected per chain at every step, and the checkpoint rows are gathered and scattered at
  per-chain indices: twice the cost per step at d = 100 (`benchmarks/README.md`).

The transition reuses `velocity_verlet` (the gradient is cached between steps: one gradient
evaluation per leapfrog step), `gaussian_euclidean` and the HMC kernel's divergence rule.

Random numbers: `key` splits into `key_momentum, key_tree`; every other draw of the transition is
`tree_uniform(key_tree, counter)` with its own counter (L = max_tree_depth): the direction of
depth j is forward in time when draw j exceeds 1/2, the subtree-vs-trajectory draw of depth j is
draw L + j, and the multinomial update at step k of the depth-j subtree is draw
2L + j 2^(L-1) + k.

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
from jax.typing import ArrayLike

from inference.hmc import prng
from inference.hmc.integrators import IntegratorState, velocity_verlet
from inference.hmc.kernel import HMCState, safe_energy_change
from inference.hmc.metrics import gaussian_euclidean

__all__ = ["NUTSInfo", "build_kernel", "tree_uniform"]


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


class _Trajectory(NamedTuple):
    """The outer loop's carry: the trajectory so far and the transition's totals."""

    left: IntegratorState        # backward end (flat arrays)
    right: IntegratorState       # forward end
    left_sharp: jax.Array        # M^{-1} p at the ends, [d]
    right_sharp: jax.Array
    rho: jax.Array               # summed momentum, [d]
    log_weight: jax.Array        # log sum exp(H0 - H) over the trajectory
    proposal: _Proposal
    depth: jax.Array             # doublings kept
    n_leapfrogs: jax.Array
    sum_accept: jax.Array
    is_divergent: jax.Array
    is_turning: jax.Array
    is_done: jax.Array


class _Checkpoints(NamedTuple):
    """What the U-turn checks of a subtree's blocks need, L = max_tree_depth rows.

    Step k of a subtree begins the blocks of levels 0..tz(k) (tz: trailing zero bits of k; all
    levels for k = 0) and ends those of levels 0..to(k) (to: trailing one bits). Each step writes
    one row: its M^{-1} p and the summed momentum before it, at row tz(k) as the first point of the
    blocks it begins (`start_*`) and at row to(k) as the last point of the blocks it ends (`end_*`).
    A row is not overwritten before the blocks that read it have ended, so a level-l block ending
    at step n finds its first half's start at row l (row tz(n + 1 - 2^l) for the top level ending
    at n), and its first half's end at row l - 1.
    """

    start_sharp: jax.Array   # [L, d]
    start_rho: jax.Array     # [L, d]
    start_dot: jax.Array     # [L]: start_sharp . start_rho
    end_sharp: jax.Array     # [L, d]
    end_rho: jax.Array       # [L, d]
    end_dot: jax.Array       # [L]: -end_sharp . end_rho
    halves_ok: jax.Array     # [L] bool: level l's first half with its second half's first point passes
    first_p: jax.Array       # [d]: the subtree's first momentum
    first_sharp: jax.Array   # [d]


class _Subtree(NamedTuple):
    """The inner loop's carry: the subtree being built, one leapfrog step per iteration."""

    current: IntegratorState     # its last point (where integration continues)
    rho: jax.Array
    log_weight: jax.Array
    proposal: _Proposal
    checkpoints: _Checkpoints
    last_sharp: jax.Array        # [d]: M^{-1} p of `current`
    leaf: jax.Array              # steps taken
    sum_accept: jax.Array
    is_divergent: jax.Array
    is_turning: jax.Array


def _criterion(sharp_a, sharp_b, rho):
    """Not turning: both ends' velocities point along the summed momentum (Betancourt 2017)."""
    return (jnp.dot(sharp_a, rho) > 0) & (jnp.dot(sharp_b, rho) > 0)


def _select(pred, a, b):
    """`where(pred, a, b)` leaf by leaf; `pred` (shape `[]` or `[C]`) indexes the leaves' leading axes."""
    pred = jnp.asarray(pred)
    return jax.tree_util.tree_map(
        lambda x, y: jnp.where(jnp.reshape(pred, pred.shape + (1,) * (jnp.ndim(x) - pred.ndim)), x, y), a, b)


def _trailing_zeros(k, n_levels):
    """Trailing zero bits of int32 `k` (n_levels - 1 for k = 0, and at most that)."""
    return jnp.minimum(lax.population_count((k & -k) - 1), n_levels - 1)


def _level_checks(c: _Checkpoints, k, momentum, sharp, rho_before) -> tuple[_Checkpoints, jax.Array]:
    """Step `k` (an int32 scalar, shared by the chains) of the chains' subtrees: writes the step's
    checkpoint rows, then runs the U-turn checks (with Stan's checks across halves) of every block
    that ends at `k`. Arrays carry the chains first: `c`'s rows `[C, L, d]`, vectors `[C, d]`. Returns
    `(checkpoints, is_turning [C])`.

    The step index is the same for every chain (the chains build their subtrees in lockstep), so rows
    are read and written at scalar offsets (slices, not gathers and scatters), and only the levels
    that end at `k` (1..top, one on average) are checked, in a loop of `top` iterations.
    """
    n_levels = c.start_dot.shape[-1]
    rho = rho_before + momentum
    dot = lambda u, v: jnp.sum(u * v, axis=-1)
    row = lambda rows, r: lax.dynamic_index_in_dim(rows, r, axis=1, keepdims=False)
    put = lambda rows, value, r: lax.dynamic_update_index_in_dim(rows, value, r, axis=1)
    tz = _trailing_zeros(k, n_levels)                      # the row of the blocks k begins
    top = _trailing_zeros(k + 1, n_levels)                 # blocks of levels 1..top end at k
    # the rows are written first and every read comes after (no row read here is one just
    # written): with the reads first, XLA copies the loop-carried arrays at every step
    start_dot = dot(sharp, rho_before)
    c = c._replace(start_sharp=put(c.start_sharp, sharp, tz), start_rho=put(c.start_rho, rho_before, tz),
                   start_dot=put(c.start_dot, start_dot, tz), end_sharp=put(c.end_sharp, sharp, top),
                   end_rho=put(c.end_rho, rho_before, top), end_dot=put(c.end_dot, -start_dot, top),
                   first_p=jnp.where(k == 0, momentum, c.first_p),
                   first_sharp=jnp.where(k == 0, sharp, c.first_sharp))
    # the halves check of the block whose second half begins here (level tz + 1): its first half
    # with this point; that block's first point is at row tz(k with its lowest set bit cleared)
    a = _trailing_zeros(k & (k - 1), n_levels)
    extended = rho_before - row(c.start_rho, a) + momentum
    halves = (dot(row(c.start_sharp, a), extended) > 0) & (dot(sharp, extended) > 0)
    level = jnp.minimum(tz + 1, n_levels - 1)
    is_second_half = (k > 0) & (tz + 1 < n_levels)
    halves = jnp.where(is_second_half, halves, row(c.halves_ok, level))
    c = c._replace(halves_ok=put(c.halves_ok, halves, level))
    # blocks of levels 1..top end here: the whole block, and its first half's last point + second
    # half; level l's first point is at row l (below the top level) or at the top level's row
    sharp_rho = dot(sharp, rho)
    top_row = _trailing_zeros((k + 1) & k, n_levels)

    def check_level(carry):
        lvl, turning = carry
        r = jnp.where(lvl < top, lvl, top_row)
        whole = ((dot(row(c.start_sharp, r), rho) - row(c.start_dot, r) > 0)
                 & (sharp_rho - dot(row(c.start_rho, r), sharp) > 0))
        across = ((dot(row(c.end_sharp, lvl - 1), rho) + row(c.end_dot, lvl - 1) > 0)
                  & (sharp_rho - dot(row(c.end_rho, lvl - 1), sharp) > 0))
        return lvl + 1, turning | ~(whole & across & row(c.halves_ok, lvl))

    is_turning = lax.while_loop(lambda carry: carry[0] <= top, check_level,
                                (jnp.ones((), k.dtype), jnp.zeros(sharp_rho.shape, bool)))[1]
    return c, is_turning


def build_kernel(max_tree_depth: int = 10, divergence_threshold: float = 1000.0
                 ) -> Callable[..., tuple[HMCState, NUTSInfo]]:
    """Returns the NUTS transition `kernel`.

    Args:
      max_tree_depth: most doublings per transition (at most 2^max_tree_depth - 1 leapfrog steps).
      divergence_threshold: energy error (nats) above which a step is divergent; it ends the
        transition, and the subtree it belongs to is not sampled from.

    Returns:
      `kernel(key, state, log_joint_fn, step_size, inverse_mass_matrix) -> (HMCState, NUTSInfo)`,
      where `step_size` is a scalar and `inverse_mass_matrix` has shape `[d]` or `[d, d]` over the
      raveled position of d scalars. One chain per call; it can be batched with `jax.vmap`.

      For many chains, `kernel.batched(keys, states, log_joint_fn, step_size, inverse_mass_matrix)`
      is the same transition for C chains at once: `keys` `[C]`, `states` with a leading chain axis,
      `step_size` `[C]` and `inverse_mass_matrix` `[C, d]` or `[C, d, d]`; it returns per-chain
      outputs with a leading `[C]` axis. The chains build their trees in lockstep (the k-th leapfrog
      step of the j-th doubling of every chain that is still going), so the tree's bookkeeping is
      shared instead of being selected per chain, as `jax.vmap` of `kernel` does. For the same keys
      it builds the same trees as `jax.vmap(kernel)` and returns the same draws up to floating-point
      rounding, at about half the cost per step for 16 chains of 100 dimensions on a CPU
      (`benchmarks/README.md`); `NUTS.sample` and `NUTS.run` use it.

    Raises:
      ValueError: `max_tree_depth` is not a positive int; from `kernel.batched`, `step_size` is not
        `[C]` or `inverse_mass_matrix` not `[C, d]` or `[C, d, d]` (C = the number of keys, which
        must also be the positions' leading axis), with the shapes given.

    Example:
      >>> kernel = build_kernel()
      >>> log_joint = lambda x: -0.5 * jnp.sum(x ** 2)
      >>> state = inference.hmc.init(jnp.zeros(3), log_joint)
      >>> state, info = jax.jit(kernel, static_argnums=2)(key, state, log_joint, 0.5, jnp.ones(3))
      >>> info.tree_depth, info.n_leapfrogs

    References:
      See the module docstring.
    """
    is_int = isinstance(max_tree_depth, int) and not isinstance(max_tree_depth, bool)
    if not is_int or not 1 <= max_tree_depth <= 25:
        raise ValueError(f"max_tree_depth must be an int in [1, 25], got {max_tree_depth!r}")
    batched = functools.partial(_transitions, max_tree_depth=max_tree_depth,
                                divergence_threshold=divergence_threshold)

    def kernel(key, state: HMCState, log_joint_fn: Callable, step_size, inverse_mass_matrix):
        add_axis = lambda x: jnp.asarray(x)[None]
        out = batched(add_axis(key), jax.tree_util.tree_map(add_axis, state), log_joint_fn,
                      add_axis(step_size), add_axis(inverse_mass_matrix))
        return jax.tree_util.tree_map(lambda x: x[0], out)

    kernel.batched = batched   # type: ignore[attr-defined]
    return kernel


def _transitions(keys, states: HMCState, log_joint_fn: Callable, step_size, inverse_mass_matrix, *,
                 max_tree_depth: int, divergence_threshold: float) -> tuple[HMCState, NUTSInfo]:
    """One NUTS transition of each of C chains (see `build_kernel`'s `kernel.batched`).

    Raises:
      ValueError: `step_size` is not `[C]`, or `inverse_mass_matrix` not `[C, d]` or `[C, d, d]`
        (C = the number of keys).
    """
    n_chains = jnp.shape(keys)[0] if jnp.ndim(keys) else None
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(states.position)
    shapes = {"step_size": jnp.shape(step_size), "inverse_mass_matrix": jnp.shape(inverse_mass_matrix)}
    d = flat.shape[-1]
    if (n_chains is None or flat.shape[0] != n_chains or shapes["step_size"] != (n_chains,)
            or shapes["inverse_mass_matrix"] not in ((n_chains, d), (n_chains, d, d))):
        raise ValueError(f"kernel.batched takes one key per chain ({jnp.shape(keys)} given), positions "
                         f"with a leading chain axis ({flat.shape} flat), step_size [C] and "
                         f"inverse_mass_matrix [C, d] or [C, d, d]; got {shapes}")
    _, unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: x[0], states.position))
    grad = jax.vmap(lambda g: ravel_pytree(g)[0])(states.log_joint_grad)
    dtype = flat.dtype
    inverse_mass_matrix = jnp.asarray(inverse_mass_matrix, dtype)
    step_size = jnp.asarray(step_size, dtype)
    one_step = lambda imm, point, eps: velocity_verlet(lambda x: log_joint_fn(unravel(x)),
                                                       gaussian_euclidean(imm).velocity)(point, eps)
    step = lambda points, eps: jax.vmap(one_step)(inverse_mass_matrix, points, eps)
    velocity = lambda p: jax.vmap(lambda imm, v: gaussian_euclidean(imm).velocity(v))(inverse_mass_matrix, p)
    many = functools.partial(jax.vmap, in_axes=0)

    def begin(key, x, log_joint, g, imm):
        """One chain's momentum, energy and the draws of the tree's directions and merges."""
        metric = gaussian_euclidean(imm)
        key_momentum, key_tree = prng.split(key)
        momentum = metric.sample_momentum(key_momentum, x)
        sharp = metric.velocity(momentum)
        energy0 = -log_joint + 0.5 * jnp.dot(momentum, sharp)
        # every depth's draws hashed before the loop: inside it, XLA fused each hash into every select
        # reading it (a dozen copies of ~170 integer operations, 28% of the program's instructions)
        depths = jnp.arange(max_tree_depth, dtype=jnp.int32)
        go_right = jax.vmap(tree_uniform, in_axes=(None, 0))(key_tree, depths) > 0.5
        log_u_merge = jnp.log(jax.vmap(tree_uniform, in_axes=(None, 0))(key_tree, max_tree_depth + depths))
        start = IntegratorState(x, momentum, log_joint, g)
        return _initial_trajectory(start, sharp, energy0), energy0, key_tree, go_right, log_u_merge

    trajectory, energy0, key_tree, go_right, log_u_merge = many(begin)(
        keys, flat, jnp.asarray(states.log_joint, dtype), grad, inverse_mass_matrix)

    def extend(carry):
        """One doubling of every chain that is still going: depth `j` for all of them."""
        j, t = carry
        going = ~t.is_done
        right = go_right[:, j]
        start = _select(right, t.right, t.left)
        eps = jnp.where(right, step_size, -step_size)
        first_counter = 2 * max_tree_depth + j * 2 ** (max_tree_depth - 1)
        sub = _build_subtree(start, going, j, step=step, velocity=velocity, energy0=energy0, step_size=eps,
                             key_tree=key_tree, first_counter=first_counter, max_tree_depth=max_tree_depth,
                             divergence_threshold=divergence_threshold)
        return j + 1, many(functools.partial(_extend_with, max_tree_depth=max_tree_depth))(
            t, sub, right, log_u_merge[:, j], going)

    _, trajectory = lax.while_loop(lambda carry: jnp.any(~carry[1].is_done), extend,
                                   (jnp.zeros((), jnp.int32), trajectory))
    proposal = trajectory.proposal
    unravel_many = jax.vmap(unravel)
    new_states = HMCState(unravel_many(proposal.position), proposal.log_joint, unravel_many(proposal.grad))
    info = NUTSInfo(trajectory.sum_accept / trajectory.n_leapfrogs.astype(dtype), trajectory.is_divergent,
                    proposal.energy, trajectory.depth, trajectory.n_leapfrogs, trajectory.is_turning)
    return new_states, info


def _build_subtree(start: IntegratorState, going, depth, *, step, velocity, energy0, step_size, key_tree,
                   first_counter, max_tree_depth, divergence_threshold) -> _Subtree:
    """The chains' subtrees of 2^depth leapfrog steps from `start` (`[C, ...]`), built in lockstep.

    A chain stops stepping when its subtree turns or diverges (or when it is not `going`); its
    counts and flags are frozen from then on, and what else it computes is never read (its subtree
    is invalid, or its trajectory is done).
    """
    sub = jax.vmap(lambda s: _empty_subtree(s, max_tree_depth))(start)
    n_steps = jnp.left_shift(1, depth)

    def leaf(carry):
        k, sub, alive = carry
        new = step(sub.current, step_size)
        sharp = velocity(new.momentum)
        delta = safe_energy_change(energy0, -new.log_joint + 0.5 * jnp.sum(new.momentum * sharp, axis=-1))
        log_weight = jnp.logaddexp(sub.log_weight, -delta)
        u = jax.vmap(tree_uniform, in_axes=(0, None))(key_tree, first_counter + k)
        point = _Proposal(new.position, new.log_joint, new.log_joint_grad, energy0 + delta)
        proposal = _select(jnp.log(u) < -delta - log_weight, point, sub.proposal)
        checkpoints, is_turning = _level_checks(sub.checkpoints, k, new.momentum, sharp, sub.rho)
        is_divergent = alive & (delta > divergence_threshold)
        is_turning = alive & is_turning & ~is_divergent
        sub = _Subtree(new, sub.rho + new.momentum, log_weight, proposal, checkpoints, sharp,
                       sub.leaf + alive.astype(sub.leaf.dtype),
                       sub.sum_accept + jnp.where(alive, jnp.exp(jnp.minimum(-delta, 0.0)), 0.0),
                       sub.is_divergent | is_divergent, sub.is_turning | is_turning)
        return k + 1, sub, alive & ~is_divergent & ~is_turning

    return lax.while_loop(lambda carry: (carry[0] < n_steps) & jnp.any(carry[2]), leaf,
                          (jnp.zeros((), jnp.int32), sub, going))[1]


def _extend_with(t: _Trajectory, sub: _Subtree, go_right, log_u, going, *, max_tree_depth) -> _Trajectory:
    """One chain's trajectory after its doubling: merged with the subtree if the subtree is valid.

    A chain that is not `going` (its trajectory was already done) keeps `t` unchanged. That select
    is folded into the merge's (one select per array, not two).
    """
    is_valid = ~sub.is_divergent & ~sub.is_turning
    merged = _merge(t, sub, go_right, log_u)
    depth = t.depth + (going & is_valid).astype(t.depth.dtype)
    ends = dict(is_divergent=sub.is_divergent, is_turning=sub.is_turning | (is_valid & merged.is_turning),
                is_done=~is_valid | merged.is_turning | (depth >= max_tree_depth))
    totals = dict(depth=depth, n_leapfrogs=jnp.where(going, t.n_leapfrogs + sub.leaf, t.n_leapfrogs),
                  sum_accept=jnp.where(going, t.sum_accept + sub.sum_accept, t.sum_accept),
                  **{name: jnp.where(going, value, getattr(t, name)) for name, value in ends.items()})
    return _Trajectory(*_select(going & is_valid, merged[:7], tuple(t[:7])), **totals)


def tree_uniform(key: jax.Array, counter: ArrayLike) -> jax.Array:
    """U(0, 1) (float32 resolution): draw number `counter` of a transition's tree, one hash of `key`.

    With the default threefry keys this is `threefry_2x32(key, [counter])[0]` of
    `jax.extend.random`, bit for bit, written out as straight-line integer arithmetic
    (`inference.hmc.prng.threefry2x32`) that XLA fuses into one loop (JAX lowers its threefry to a
    rolled `while` on CPU, whose per-iteration cost would be paid at every leapfrog step). Other key
    implementations use
    `uniform(fold_in(key, counter))`.

    Args:
      key: a PRNG key.
      counter: an int32 scalar (see the module docstring for the layout).

    Returns:
      A float32 scalar in [0, 1).
    """
    counter = jnp.asarray(counter)
    if str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.random.uniform(jax.random.fold_in(key, counter))
    words = jax.random.key_data(key)
    bits = prng.threefry2x32(words[0], words[1], counter.astype(jnp.uint32), jnp.uint32(0))[0]
    mantissa = jnp.right_shift(bits, jnp.uint32(9)) | jnp.uint32(0x3F800000)
    return lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0


class _Merged(NamedTuple):
    left: IntegratorState
    right: IntegratorState
    left_sharp: jax.Array
    right_sharp: jax.Array
    rho: jax.Array
    log_weight: jax.Array
    proposal: _Proposal
    is_turning: jax.Array


def _merge(t: _Trajectory, sub: _Subtree, go_right, log_u) -> _Merged:
    """The trajectory extended by a completed subtree (used when the subtree is valid).

    Biased progressive sampling: the subtree's proposal replaces the trajectory's with probability
    min(1, w_subtree / w_old). Then the U-turn checks of the merged trajectory: the whole of it,
    the old part with the subtree's first point, and the subtree with the old part's adjacent end.
    """
    new, sharp = sub.current, sub.last_sharp
    first_p, first_sharp = sub.checkpoints.first_p, sub.checkpoints.first_sharp
    proposal = _select(log_u < sub.log_weight - t.log_weight, sub.proposal, t.proposal)
    left = _select(go_right, t.left, new)
    right = _select(go_right, new, t.right)
    left_sharp = jnp.where(go_right, t.left_sharp, sharp)
    right_sharp = jnp.where(go_right, sharp, t.right_sharp)
    far_sharp = jnp.where(go_right, t.left_sharp, t.right_sharp)        # old end away from the subtree
    adjacent_p = jnp.where(go_right, t.right.momentum, t.left.momentum)  # old end next to it
    adjacent_sharp = jnp.where(go_right, t.right_sharp, t.left_sharp)
    rho = t.rho + sub.rho
    is_turning = ~(_criterion(far_sharp, sharp, rho)
                   & _criterion(far_sharp, first_sharp, t.rho + first_p)
                   & _criterion(adjacent_sharp, sharp, sub.rho + adjacent_p))
    return _Merged(left, right, left_sharp, right_sharp, rho, jnp.logaddexp(t.log_weight, sub.log_weight),
                   proposal, is_turning)


def _initial_trajectory(start: IntegratorState, sharp, energy0) -> _Trajectory:
    """The trajectory of the starting point alone."""
    dtype = start.position.dtype
    proposal = _Proposal(start.position, start.log_joint, start.log_joint_grad, energy0)
    false = jnp.zeros((), bool)
    zero_int = jnp.zeros((), jnp.int32)
    return _Trajectory(start, start, sharp, sharp, start.momentum, jnp.zeros((), dtype), proposal, zero_int,
                       zero_int, jnp.zeros((), dtype), false, false, false)


def _empty_subtree(start: IntegratorState, n_levels: int) -> _Subtree:
    """A subtree with no step yet, growing from `start`."""
    d, dtype = start.position.shape[0], start.position.dtype
    rows, vector = jnp.zeros((n_levels, d), dtype), jnp.zeros((d,), dtype)
    scalars = jnp.zeros((n_levels,), dtype)
    checkpoints = _Checkpoints(rows, rows, scalars, rows, rows, scalars, jnp.ones((n_levels,), bool), vector,
                               vector)
    proposal = _Proposal(start.position, start.log_joint, start.log_joint_grad, jnp.zeros((), dtype))
    false = jnp.zeros((), bool)
    return _Subtree(start, vector, jnp.full((), -jnp.inf, dtype), proposal, checkpoints, vector,
                    jnp.zeros((), jnp.int32), jnp.zeros((), dtype), false, false)
