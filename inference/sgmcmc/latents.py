"""The SG-MCMC driver's latent space: a model's constrained latents moved on the unconstrained space.

With a `model_fn(batch) -> (meta_bn, observed)` the driver samples what HMC samples: each latent's
unconstrained value `u = biject_to(support).inv(z)`, with the log-determinant of the Jacobian in
the log-joint (`inference.sgmcmc.gradients.minibatch_log_joint_fn`, built on
`inference.log_joint.constrained_net`). `init` is mapped to that space once, outside jit (with
clear errors for a value outside the support), and the kept samples are mapped back inside the
compiled program before `record_fn` sees them. When every latent has real support both maps are
the identity and are skipped.

The transforms are derived from the model run on the first minibatch: a support may depend on
other latents (`w ~ U(0, z)`), but not on the minibatch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import numpy as np
from numpyro.distributions.transforms import IdentityTransform, IndependentTransform

from inference.hmc.model import LatentSummary, check_init_values
from inference.log_joint import LatentSpec, constrained_net, latent_specs, make_log_joint

__all__ = ["LatentSpace", "first_batch", "latent_space", "to_constrained_fn"]


class LatentSpace(NamedTuple):
    """A model's latents as the driver samples them.

    Attributes:
      specs: `{name: LatentSpec}` (constrained and unconstrained shapes, support, transform).
      is_identity: every latent has real support: positions are the latents' values.
    """

    specs: dict[str, LatentSpec]
    is_identity: bool


def first_batch(data: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """The first `batch_size` rows of every data array (a minibatch of the right shapes)."""
    return {name: value[:batch_size] for name, value in data.items()}


def _is_identity(transform) -> bool:
    while isinstance(transform, IndependentTransform):
        transform = transform.base_transform
    return isinstance(transform, IdentityTransform)


def latent_space(model_fn: Callable, data: Mapping[str, Any], batch_size: int,
                 init: Mapping[str, Any] | None) -> tuple[LatentSpace, dict[str, jax.Array] | None]:
    """The model's `LatentSpace`, and `init` (constrained values) on the unconstrained space.

    Args:
      model_fn: `batch -> (meta_bn, observed)`.
      data: `{name: array [N, ...]}`.
      batch_size: examples per minibatch.
      init: `{latent name: value}` for every latent, each of the latent's shape or with leading
        axes (e.g. `[n_chains]`); None (resuming) maps nothing.

    Returns:
      `(space, position)`: `position` is `{name: u}` with the same leading axes (None without `init`).

    Raises:
      ValueError: `init` names a node that is not a latent, misses a latent, holds NaN or inf, or a
        value outside the latent's support (naming the latent and its support).
      TypeError: a discrete latent.
    """
    meta_bn, observed = model_fn(first_batch(data, batch_size))
    specs = latent_specs(meta_bn, observed, init)
    space = LatentSpace(dict(specs), all(s.transform is not None and _is_identity(s.transform)
                                         for s in specs.values()))
    if init is None:
        return space, None
    missing = sorted(set(specs) - set(init))
    if missing:
        raise ValueError(f"init must give every latent of the model {list(specs)}; it lacks {missing}")
    check_init_values(init, {name: LatentSummary(s.shape, s.dtype, s.unconstrained_shape)
                             for name, s in specs.items()})
    if space.is_identity:
        return space, dict(init)
    for name, spec in specs.items():   # supports known before the run (the others: checked below)
        if spec.support is not None:
            _check_inside(name, ~np.asarray(spec.support.check(init[name])), spec.support)
    position = make_log_joint(meta_bn, observed, specs=specs).to_unconstrained(dict(init))
    for name, value in position.items():
        _check_inside(name, ~np.isfinite(np.asarray(value)), specs[name].support)
    return space, position


def _check_inside(name: str, is_outside: np.ndarray, support: Any) -> None:
    if is_outside.any():
        raise ValueError(f"init[{name!r}] holds {int(is_outside.sum())} value(s) outside the latent's "
                         f"support ({support if support is not None else 'set by other latents'}); SG-MCMC "
                         "moves it on the unconstrained space and needs a start inside the support")


def to_constrained_fn(model_fn: Callable, space: LatentSpace | None, batch_size: int
                      ) -> Callable[[dict, Mapping[str, Any]], dict]:
    """`(positions [n_chains, ...], data) -> {name: constrained values [n_chains, ...]}`, for use in jit.

    The identity without a model (a plain log-joint function) or when every latent has real support.
    """
    if space is None or space.is_identity:
        return lambda positions, data: positions

    def to_constrained(positions, data):
        meta_bn, observed = model_fn(first_batch(data, batch_size))
        return jax.vmap(lambda position: constrained_net(meta_bn, observed, position)[1])(positions)

    return to_constrained
