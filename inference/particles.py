"""Where the particles are: checks of an objective's `axis` and of latent sample shapes.

A variational objective averages `log_joint - log_q` (the log-weights, shape
`[*particles_and_batch]`) over its particle axis `axis`. A wrong axis gives a number, not an error,
unless it is checked: `axis=1` on `[n_particles, n_data]` log-weights averages over data points,
`axis=0` without a particle axis averages over the data, `axis=None` with particles returns raw
log-weights. So before anything is computed, each latent's particle axes are located from what is
known about it, and `axis` is checked against them:

* the variational net drew the latent with `n_samples=K` (its leading axis is the particle axis);
* the model draws the node with `n_samples=K` itself;
* the samples have more leading axes than the model's node (`n_samples + batch + event` shape):
  the extra leading axes are particle axes (e.g. q's parameters broadcast to `[K, n, d]`).

The same comparison catches samples that the model would silently broadcast: a `[5, 3, 1]` sample
for a `[5, 3, 2]` node, or a sample without the particle axis the model's node has. With `latent=`
dicts, each `log_q` must carry the particle axes of its samples.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import jax.numpy as jnp

from ppl.bayesian_net import BayesianNet
from ppl.tensors import StochasticTensor

__all__ = ["ParticleAxis", "check_latent_shapes", "find_particle_axes", "check_axis"]


class ParticleAxis(NamedTuple):
    """A particle axis of the log-weights, and how it was found.

    Attributes:
      axis: its position in `log_joint - log_q` (non-negative).
      size: the number of particles along it.
      latent: the latent that has it.
      reason: how it was found (for error messages).
    """

    axis: int
    size: int
    latent: str
    reason: str


def _node_shape(node) -> tuple[int, ...]:
    """A model node's own shape: `[n_samples, *batch_shape, *event_shape]`."""
    d = node.distribution
    return (() if node.n_samples is None else (node.n_samples,)) + tuple(d.batch_shape) + tuple(d.event_shape)


def check_latent_shapes(what: str, model_bn: BayesianNet, latent: Mapping[str, tuple]) -> None:
    """Raises when a latent's samples would be broadcast up to the model node's shape.

    Args:
      what: the objective's name, for messages.
      model_bn: the model `BayesianNet` conditioned on the latents.
      latent: `{name: (samples, log_q)}`.

    Raises:
      ValueError: samples with fewer axes than the node, or a size-1 axis where the node's is
        larger; the message names the latent and both shapes.
    """
    for name, (samples, _) in latent.items():
        value_shape, node_shape = tuple(jnp.shape(samples)), _node_shape(model_bn[name])
        if len(value_shape) < len(node_shape):
            raise ValueError(f"{what}: latent {name!r} has samples of shape {value_shape}, fewer axes than "
                             f"the model's node {name!r} of shape {node_shape} (n_samples + batch + "
                             "event): the model would broadcast one sample over the missing leading "
                             "axes (a proposal without its particle axis?)")
        for i in range(1, len(node_shape) + 1):
            if value_shape[-i] == 1 and node_shape[-i] > 1:
                raise ValueError(f"{what}: latent {name!r} has samples of shape {value_shape}, but the "
                                 f"model's node {name!r} has shape {node_shape}: axis "
                                 f"{len(value_shape) - i} of size 1 would be broadcast to "
                                 f"{node_shape[-i]}")


def find_particle_axes(model_bn: BayesianNet | None, latent: Mapping[str, tuple],
                       latent_nodes: Mapping | None, log_w_shape: tuple[int, ...]
                       ) -> tuple[list[ParticleAxis], bool]:
    """Locates each latent's particle axes in the log-weights.

    Args:
      model_bn: the conditioned model `BayesianNet`, or None (a log-joint function was given).
      latent: `{name: (samples, log_q)}`.
      latent_nodes: the variational net's latent records, or None (`latent=` was a dict).
      log_w_shape: the shape of `log_joint - log_q`.

    Returns:
      `(axes, is_known)`: the particle axes found, and whether the absence of any is itself known
      (the model's node shapes were available to compare against).
    """
    n_dims, found = len(log_w_shape), []
    for name, (samples, log_q) in latent.items():
        value_shape = tuple(jnp.shape(samples))
        positions = {}                                    # position in the samples -> reason
        if latent_nodes is not None and latent_nodes[name].n_samples is not None:
            positions[0] = f"the variational net drew it with n_samples={latent_nodes[name].n_samples}"
        if model_bn is not None:
            node = model_bn[name]
            if not isinstance(node, StochasticTensor):
                raise TypeError(f"{name!r} is a deterministic node of the model, not a latent")
            node_shape = _node_shape(node)
            extra = len(value_shape) - len(node_shape)
            for p in range(extra):
                positions.setdefault(p, f"its samples {value_shape} have {extra} more leading axes "
                                        f"than the model's node of shape {node_shape}")
            if node.n_samples is not None:
                positions.setdefault(extra, f"the model draws it with n_samples={node.n_samples}")
            event_ndims = len(node.distribution.event_shape) + node.group_ndims
            offset = n_dims - (max(len(value_shape), len(node_shape)) - event_ndims)
        else:
            offset = n_dims - jnp.ndim(log_q)
        for p, reason in sorted(positions.items()):
            if 0 <= p + offset < n_dims:
                found.append(ParticleAxis(p + offset, log_w_shape[p + offset], name, reason))
    return found, model_bn is not None


def check_log_q_axes(what: str, latent: Mapping[str, tuple], axes: list[ParticleAxis],
                     log_w_shape: tuple[int, ...]) -> None:
    """Raises when a latent's `log_q` lacks a particle axis its samples have."""
    n_dims = len(log_w_shape)
    for particle in axes:
        log_q_shape = tuple(jnp.shape(latent[particle.latent][1]))
        position = particle.axis - (n_dims - len(log_q_shape))
        if particle.size > 1 and (position < 0 or log_q_shape[position] != particle.size):
            raise ValueError(f"{what}: latent {particle.latent!r} has {particle.size} particles along axis "
                             f"{particle.axis} of log_joint - log_q (shape {log_w_shape}), but its log_q "
                             f"of shape {log_q_shape} lacks that axis and would be broadcast over it")


def check_axis(what: str, axis: int | None, axes: list[ParticleAxis], is_known: bool,
               log_w_shape: tuple[int, ...], requires_axis: bool) -> None:
    """Raises unless `axis` is a particle axis (or None when there is none).

    Args:
      what: the objective's name, for messages.
      axis: the axis the objective averages over (already checked to be in range), or None.
      axes, is_known: from `find_particle_axes`.
      log_w_shape: the shape of `log_joint - log_q`.
      requires_axis: whether the objective needs a particle axis (multi-sample objectives).

    Raises:
      ValueError: `axis=None` with particles, or a missing axis where one is required; an `axis`
        where no latent has particles; an `axis` that is not a particle axis. The message names
        the latent, the particle axis and the shape of the log-weights.
    """
    first = axes[0] if axes else None
    where = (f"latent {first.latent!r} has {first.size} particles along axis {first.axis} of "
             f"log_joint - log_q (shape {log_w_shape}): {first.reason}") if first else ""
    if axis is None:
        if requires_axis:
            raise ValueError(f"{what} is a multi-sample objective: give `axis`, the axis of the K "
                             "samples" + (f" ({where})" if first else ""))
        if first:
            raise ValueError(f"{what}: axis=None, but {where}; give axis={first.axis} to average over "
                             "them (the per-particle values are `.log_weight`)")
        return
    position = axis % len(log_w_shape)
    if first is None:
        if is_known:
            raise ValueError(f"{what}: axis={axis}, but no latent has a particle axis (each latent's "
                             "samples have the shape of the model's node, and no node was drawn with "
                             f"n_samples): axis {position} of log_joint - log_q (shape {log_w_shape}) "
                             "indexes data, and averaging over it would mix data points. Draw the "
                             "variational nodes with n_samples=K, or give axis=None for one sample")
        return
    if position not in {particle.axis for particle in axes}:
        raise ValueError(f"{what}: axis={axis} is not the particle axis: {where}; axis={axis} would "
                         "average over data points instead")
