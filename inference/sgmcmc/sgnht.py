"""Stochastic gradient Nose-Hoover thermostat (SGNHT)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from inference.sgmcmc.base import check_latent, check_learning_rate
from inference.sgmcmc.gradients import normal_like
from inference.sgmcmc.sghmc import MomentumSGMCMC, check_resample_interval

__all__ = ["SGNHT", "SGNHTInfo", "SGNHTState"]


class SGNHTState(NamedTuple):
    """SGNHT's state.

    Attributes:
      position: `{name: array}`, the current sample.
      momentum: `{name: array}` like `position`, the velocity `v`.
      alpha: `{name: array}`, the thermostat (friction) variables: shaped like each latent when
        `use_vector_alpha`, else shape `[]`.
      count: steps taken, int32 of shape `[]`.
    """

    position: dict
    momentum: dict
    alpha: dict
    count: jax.Array  # type: ignore[assignment]  # the field shadows tuple.count (as in optax states)


class SGNHTInfo(NamedTuple):
    """SGNHT's diagnostics (ZhuSuan's `mean_k` and `alpha`).

    Attributes:
      mean_k: `{name: array}`, the updated `v ** 2`, elementwise (shaped like the latent) when
        `use_vector_alpha`, else its mean (shape `[]`). The thermostat drives it to `learning_rate`.
      alpha: `{name: array}`, the updated friction, shaped as in `SGNHTState.alpha`.
      learning_rate: the rate used in the step, shape `[]`.
    """

    mean_k: dict
    alpha: dict
    learning_rate: jax.Array
    is_rejected: jax.Array | bool = False   # a non-finite gradient: the step was not taken


class SGNHT(MomentumSGMCMC):
    """Stochastic gradient Nose-Hoover thermostat (Ding et al., 2014), as in ZhuSuan's `SGNHT`.

    Algorithm 2 of the paper's supplement, in the velocity form of `SGHMC` (learning rate
    :math:`\\eta`, extra noise :math:`a`, tune rate :math:`\\kappa`, log-joint gradient
    :math:`g`, :math:`\\langle\\cdot\\rangle` the mean over a latent's entries unless
    `use_vector_alpha`); first order:

    .. math::
      v_{t+1} &= (1 - \\alpha_t) v_t + \\eta\\, g(z_t) + \\xi_t, \\quad \\xi_t \\sim N(0, 2 a \\eta I),\\\\
      z_{t+1} &= z_t + v_{t+1}, \\qquad
      \\alpha_{t+1} = \\alpha_t + \\kappa (\\langle v_{t+1}^2 \\rangle - \\eta).

    Second order (Chen, Ding and Carin, 2015):

    .. math::
      z' &= z_t + v_t / 2, \\quad
      \\alpha' = \\alpha_t + \\tfrac{\\kappa}{2} (\\langle v_t^2 \\rangle - \\eta),\\\\
      v_{t+1} &= e^{-\\alpha'/2} \\big(e^{-\\alpha'/2} v_t + \\eta\\, g(z') + \\xi_t\\big), \\quad
      z_{t+1} = z' + v_{t+1} / 2, \\quad
      \\alpha_{t+1} = \\alpha' + \\tfrac{\\kappa}{2} (\\langle v_{t+1}^2 \\rangle - \\eta).

    The thermostat :math:`\\alpha` (started at :math:`a`) adapts the friction to the unknown
    gradient noise so that the kinetic temperature :math:`\\langle v^2 \\rangle` stays at
    :math:`\\eta`. With exact gradients and `variance_extra=0` the dynamics has no noise at all
    (deterministic Nose-Hoover); give `variance_extra > 0` there.

    Args:
      learning_rate: :math:`\\eta > 0` (scales as `SGHMC`'s), a float or an optax schedule.
      variance_extra: :math:`a \\ge 0`, the injected noise and the initial friction.
      tune_rate: :math:`\\kappa > 0`, how fast the friction adapts.
      n_iter_resample_v: resample the momentum from :math:`N(0, \\eta I)` every this many steps;
        None or 0: only at the first step.
      second_order: use the second-order integrator.
      use_vector_alpha: one friction per coordinate (True) or one per latent (False).

    Raises:
      ValueError: a negative `variance_extra`, a non-positive `tune_rate`, a bad
        `n_iter_resample_v` or `learning_rate`.

    References:
      Ding, Fang, Babbush, Chen, Skeel and Neven, `Bayesian Sampling Using Stochastic Gradient
      Thermostats <https://papers.nips.cc/paper/5592-bayesian-sampling-using-stochastic-gradient-thermostats>`_,
      2014.
    """

    def __init__(self, learning_rate: float | Callable[[jax.Array], jax.Array], variance_extra: float = 0.0,
                 tune_rate: float = 1.0, n_iter_resample_v: int | None = None, second_order: bool = True,
                 use_vector_alpha: bool = True):
        self.learning_rate = check_learning_rate(learning_rate)
        if not variance_extra >= 0.0:
            raise ValueError(f"SGNHT variance_extra must be >= 0, got {variance_extra!r}")
        if not tune_rate > 0.0:
            raise ValueError(f"SGNHT tune_rate must be positive, got {tune_rate!r}")
        self.variance_extra = float(variance_extra)
        self.tune_rate = float(tune_rate)
        self.n_iter_resample_v = check_resample_interval(n_iter_resample_v)
        self.second_order = bool(second_order)
        self.use_vector_alpha = bool(use_vector_alpha)

    def init(self, latent: Mapping[str, Any]) -> SGNHTState:
        """The state at `latent`, friction at `variance_extra`, momentum drawn at the first step."""
        position = check_latent(latent)
        if self.use_vector_alpha:
            alpha = jax.tree.map(lambda z: jnp.full_like(z, self.variance_extra), position)
        else:
            alpha = jax.tree.map(lambda z: jnp.full((), self.variance_extra, z.dtype), position)
        return SGNHTState(position, jax.tree.map(jnp.zeros_like, position), alpha, jnp.zeros((), jnp.int32))

    def _kinetic(self, v):
        return v * v if self.use_vector_alpha else jnp.mean(v * v)

    def _update(self, prepared, state, grads):
        lr, v, key_noise = prepared
        noise = normal_like(key_noise, v, jnp.sqrt(2.0 * self.variance_extra * lr))
        kappa = self.tune_rate
        if self.second_order:
            half = jax.tree.map(lambda z, m: z + 0.5 * m, state.position, v)
            alpha = jax.tree.map(lambda a, m: a + 0.5 * kappa * (self._kinetic(m) - lr), state.alpha, v)
            v = jax.tree.map(lambda a, m, g, n: jnp.exp(-0.5 * a) * (jnp.exp(-0.5 * a) * m + lr * g + n),
                             alpha, v, grads, noise)
            position = jax.tree.map(lambda z, m: z + 0.5 * m, half, v)
            mean_k = jax.tree.map(self._kinetic, v)
            alpha = jax.tree.map(lambda a, k: a + 0.5 * kappa * (k - lr), alpha, mean_k)
        else:
            v = jax.tree.map(lambda a, m, g, n: (1.0 - a) * m + lr * g + n, state.alpha, v, grads, noise)
            position = jax.tree.map(lambda z, m: z + m, state.position, v)
            mean_k = jax.tree.map(self._kinetic, v)
            alpha = jax.tree.map(lambda a, k: a + kappa * (k - lr), state.alpha, mean_k)
        cast = lambda tree, like: jax.tree.map(lambda x, y: x.astype(y.dtype), tree, like)
        position, v, alpha = cast(position, state.position), cast(v, state.position), cast(alpha, state.alpha)
        info = SGNHTInfo(mean_k, alpha, lr)
        return SGNHTState(position, v, alpha, state.count + 1), info
