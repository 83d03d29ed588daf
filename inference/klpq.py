"""The inclusive KL objective KL(p || q) and its importance-sampling (RWS) estimator."""

from __future__ import annotations

import warnings

import jax

from inference import estimators
from inference.iw_objective import require_score_function
from inference.objective import VariationalObjective

__all__ = ["InclusiveKLObjective", "klpq"]


class InclusiveKLObjective(VariationalObjective):
    """The inclusive KL divergence KL(p(z | x) || q(z)), for fitting q (not the model).

    It cannot be evaluated (it needs the true posterior), only optimised through `importance()`.
    Paired with the importance weighted objective for the model, this is reweighted wake-sleep.
    See `VariationalObjective` for the arguments and attributes.

    References:
      Bornschein and Bengio, `Reweighted Wake-Sleep <https://arxiv.org/abs/1406.2751>`_, 2015.
    """

    def importance(self) -> jax.Array:
        """Self-normalised importance-sampling surrogate cost for q (RWS wake-phase q update).

        See `inference.estimators.importance`. Warns (UserWarning) with a single sample
        (`axis=None`): the self-normalised weight is then 1 and the update just raises log q of
        the sample, a heavily biased estimate.

        Returns:
          The cost per data point, `axis` reduced; minimise it for the variational parameters.

        Raises:
          ValueError: a reparameterised latent (build it with `is_reparameterized=False`).
        """
        require_score_function(self.latent_nodes, "importance")
        if self.axis is None or self.log_weight.shape[self.axis] == 1:
            warnings.warn("klpq(...).importance() uses self-normalised importance sampling, which is "
                          "heavily biased with a single sample; use several samples along `axis`",
                          stacklevel=2)
        return estimators.importance(self.log_joint, self.log_q, self.axis)

    def rws(self) -> jax.Array:
        """Alias of `importance` (ZhuSuan's older name)."""
        return self.importance()


def klpq(meta_bn, observed, variational=None, latent=None, axis=None) -> InclusiveKLObjective:
    """The inclusive KL objective of `meta_bn` given `observed` (ZhuSuan's `klpq`).

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the model's observed nodes.
      variational: a sampled variational `ppl.BayesianNet` (samples along `axis`).
      latent: or `{name: (samples, log_q)}`.
      axis: the axis of the samples (None: a single sample, warned against).

    Returns:
      An `InclusiveKLObjective` with `.importance()`.

    Example:
      >>> q = build_q(params, x, n_particles=10).observe(key)
      >>> q_cost = jnp.mean(klpq(model, {"x": x}, variational=q, axis=0).importance())
    """
    return InclusiveKLObjective(meta_bn, observed, variational=variational, latent=latent, axis=axis)
