"""A direct, recursive NUTS transition (Python control flow, op by op) to check the iterative kernel.

It follows Stan's `base_nuts.hpp` structure: `transition` doubles the trajectory in random
directions; `build_tree(depth)` recursively builds the initial and the final half of a subtree and
checks the merged subtree (whole, initial half + the final half's first point, the initial half's
last point + final half). It draws its random numbers exactly as `inference.hmc.nuts` documents
(per-depth direction, subtree-vs-trajectory draw, and a per-step draw for the subtree's proposal,
updated point by point, each `tree_uniform(key_tree, counter)`), so for the same key both must
build the same tree and return the same point. Not jitted: every branch is a Python `if`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from inference.hmc.integrators import IntegratorState, velocity_verlet
from inference.hmc.metrics import gaussian_euclidean
from inference.hmc.nuts import tree_uniform


def criterion(sharp_minus, sharp_plus, rho):
    return float(jnp.dot(sharp_plus, rho)) > 0 and float(jnp.dot(sharp_minus, rho)) > 0


class _Subtree:
    """The running multinomial draw over one subtree's points, in the order they are built."""

    def __init__(self, key_tree, first_counter):
        self.key_tree, self.first_counter = key_tree, first_counter
        self.n, self.log_weight, self.proposal = 0, -np.inf, None

    def add(self, point, log_w, dtype):
        log_weight = float(jnp.logaddexp(self.log_weight, log_w))
        u = tree_uniform(self.key_tree, self.first_counter + self.n)
        if float(jnp.log(u)) < log_w - log_weight:
            self.proposal = point
        self.log_weight, self.n = log_weight, self.n + 1


def transition(key, position, log_joint_fn, step_size, inverse_mass_matrix, max_tree_depth=10,
               divergence_threshold=1000.0):
    """One NUTS transition from `position`; returns a dict of the new position and the diagnostics."""
    flat, unravel = ravel_pytree(position)
    dtype = flat.dtype
    metric = gaussian_euclidean(jnp.asarray(inverse_mass_matrix, dtype))
    value_and_grad = jax.value_and_grad(lambda x: log_joint_fn(unravel(x)))
    step = velocity_verlet(lambda x: log_joint_fn(unravel(x)), metric.velocity)
    key_momentum, key_tree = jax.random.split(key)
    momentum = metric.sample_momentum(key_momentum, flat)
    log_joint, grad = value_and_grad(flat)
    z0 = IntegratorState(flat, momentum, log_joint, grad)
    energy = lambda z: float(-z.log_joint + 0.5 * jnp.dot(z.momentum, metric.velocity(z.momentum)))
    h0 = energy(z0)
    stats = {"n_leapfrogs": 0, "sum_accept": 0.0, "is_divergent": False}

    def build_tree(depth, z, sign, subtree):
        """Returns (valid, z_end, p_sharp_beg, p_sharp_end, rho, p_beg, p_end)."""
        if depth == 0:
            z = step(z, sign * step_size)
            stats["n_leapfrogs"] += 1
            h = energy(z)
            if not np.isfinite(h):
                h = np.inf
            if h - h0 > divergence_threshold:
                stats["is_divergent"] = True
            stats["sum_accept"] += min(1.0, float(np.exp(h0 - h)))
            subtree.add((z, h), h0 - h, dtype)
            sharp = metric.velocity(z.momentum)
            return not stats["is_divergent"], z, sharp, sharp, z.momentum, z.momentum, z.momentum
        valid, z, sharp_beg, sharp_init_end, rho_init, p_beg, p_init_end = build_tree(depth - 1, z, sign,
                                                                                      subtree)
        if not valid:
            return False, z, None, None, None, None, None
        valid, z, sharp_final_beg, sharp_end, rho_final, p_final_beg, p_end = build_tree(depth - 1, z, sign,
                                                                                         subtree)
        if not valid:
            return False, z, None, None, None, None, None
        rho = rho_init + rho_final
        persist = (criterion(sharp_beg, sharp_end, rho)
                   and criterion(sharp_beg, sharp_final_beg, rho_init + p_final_beg)
                   and criterion(sharp_init_end, sharp_end, rho_final + p_init_end))
        return persist, z, sharp_beg, sharp_end, rho, p_beg, p_end

    z_fwd = z_bck = z0
    sharp0 = metric.velocity(momentum)
    p_fwd_fwd = p_bck_bck = momentum
    sharp_fwd_fwd = sharp_bck_bck = sharp0
    rho = momentum
    log_sum_weight = 0.0
    sample = (z0, h0)
    depth, is_turning = 0, False
    while depth < max_tree_depth:
        go_right = float(tree_uniform(key_tree, depth)) > 0.5
        subtree = _Subtree(key_tree, 2 * max_tree_depth + depth * 2 ** (max_tree_depth - 1))
        if go_right:
            rho_bck, p_bck_fwd, sharp_bck_fwd = rho, p_fwd_fwd, sharp_fwd_fwd
            valid, z_fwd, sharp_fwd_bck, sharp_fwd_fwd, rho_fwd, p_fwd_bck, p_fwd_fwd = build_tree(
                depth, z_fwd, 1.0, subtree)
        else:
            rho_fwd, p_fwd_bck, sharp_fwd_bck = rho, p_bck_bck, sharp_bck_bck
            valid, z_bck, sharp_bck_fwd, sharp_bck_bck, rho_bck, p_bck_fwd, p_bck_bck = build_tree(
                depth, z_bck, -1.0, subtree)
        if not valid:
            is_turning = not stats["is_divergent"]
            break
        log_u = float(jnp.log(tree_uniform(key_tree, max_tree_depth + depth)))
        depth += 1
        if log_u < subtree.log_weight - log_sum_weight:
            sample = subtree.proposal
        log_sum_weight = float(jnp.logaddexp(log_sum_weight, subtree.log_weight))
        rho = rho_bck + rho_fwd
        persist = (criterion(sharp_bck_bck, sharp_fwd_fwd, rho)
                   and criterion(sharp_bck_bck, sharp_fwd_bck, rho_bck + p_fwd_bck)
                   and criterion(sharp_bck_fwd, sharp_fwd_fwd, rho_fwd + p_bck_fwd))
        if not persist:
            is_turning = True
            break
    z, h = sample
    return {"position": unravel(z.position), "log_joint": float(z.log_joint), "energy": h,
            "tree_depth": depth, "n_leapfrogs": stats["n_leapfrogs"], "is_divergent": stats["is_divergent"],
            "is_turning": is_turning, "acceptance_rate": stats["sum_accept"] / stats["n_leapfrogs"]}
