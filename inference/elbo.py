"""The evidence lower bound and its SGVB gradient estimator."""

from __future__ import annotations

import jax

from inference import estimators
from inference.estimators import ReinforceResult, ReinforceState
from inference.objective import VariationalObjective

__all__ = ["EvidenceLowerBoundObjective", "elbo"]


class EvidenceLowerBoundObjective(VariationalObjective):
    """The ELBO, E_q[log p(x, z) - log q(z)], with its gradient estimators.

    See `VariationalObjective` for the arguments and attributes. As in ZhuSuan, the object stands
    for the bound: `jnp.mean(lb)`, `lb + 1` and `float(lb)` use `lb.value` (`lb.tensor`), and
    `lb.sgvb()` is the cost to minimise.

    .. math::
      \\mathcal{L}(x) = \\mathbb{E}_{q(z)}[\\log p(x, z) - \\log q(z)] \\le \\log p(x)

    References:
      Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
    """

    name = "elbo"

    @property
    def value(self) -> jax.Array:
        """The lower bound per data point (nats), the particle `axis` averaged; to maximise."""
        return self._mean(self.log_weight)

    def sgvb(self) -> jax.Array:
        """Surrogate cost for the reparameterised (SGVB) gradient; to minimise.

        Its gradient is the pathwise gradient of `-value` (Kingma and Welling, 2014), with the
        variational parameters' score term removed when latents use `use_path_derivative`
        (Roeder, Wu and Duvenaud, `Sticking the Landing <https://arxiv.org/abs/1703.09194>`_, 2017).

        Returns:
          The cost per data point: `-value`, shape `log_weight.shape` without `axis`.

        Raises:
          ValueError: a latent of the variational net is not reparameterised.
        """
        self._require_reparameterized("sgvb")
        return -self._mean(self.log_weight)

    def reinforce(self, baseline_state: ReinforceState, variance_reduction: bool = True,
                  baseline: jax.Array | None = None, decay: float = 0.8) -> ReinforceResult:
        """Score-function (REINFORCE / NVIL) surrogate cost, with the moving-average state in and out.

        ZhuSuan's `reinforce(variance_reduction, baseline, decay)`, with its hidden moving-average
        variable made explicit as `baseline_state` (start from `inference.reinforce_init()`). See
        `inference.estimators.reinforce` for the estimator, the meaning of `decay` and the shapes.

        Args:
          baseline_state: the `ReinforceState` returned by the previous step.
          variance_reduction: centre the learning signal with the moving average (and `baseline`).
          baseline: optional learned per-data-point baseline `b(x)`, broadcastable to `log_joint`.
          decay: moving-average decay: `new = decay * old + (1 - decay) * mean(signal)`.

        Returns:
          `ReinforceResult(cost, baseline_cost, state)`: minimise `cost` for the model and
          variational parameters, `baseline_cost` for the baseline network, and pass `state` on.

        Raises:
          ValueError: a latent of the variational net is reparameterised (gradients would flow
            through the samples; build it with `is_reparameterized=False`), or see
            `inference.estimators.reinforce`.

        Example:
          >>> state = inference.reinforce_init()
          >>> result = elbo(model, {"x": x}, variational=q, axis=0).reinforce(state)
          >>> loss, state = jnp.mean(result.cost), result.state
        """
        self._require_score_function("reinforce")
        return estimators.reinforce(self.log_joint, self.log_q, baseline_state, axis=self.axis,
                                    variance_reduction=variance_reduction, baseline=baseline,
                                    decay=decay)


def elbo(meta_bn, observed, latent=None, axis=None, variational=None) -> EvidenceLowerBoundObjective:
    """The evidence lower bound of `meta_bn` given `observed`, under the variational posterior.

    ZhuSuan's `zs.variational.elbo(meta_bn, observed, latent=None, axis=None, variational=None)`.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`, or a log-joint function of a dict of every
        node's value (ZhuSuan's alternative).
      observed: `{name: value}` for the model's observed nodes.
      latent: `{name: (samples, log_q)}`, or give `variational`.
      axis: the particle axis to average over (None: a single sample, no particle axis); checked
        against the latents' particle axis (see `inference.particles`).
      variational: a sampled variational `ppl.BayesianNet` (its unobserved nodes are the latents).

    Returns:
      An `EvidenceLowerBoundObjective`: `.value` (per data point; the object stands for it as an
      array), `.sgvb()` (cost) and `.reinforce(baseline_state, ...)` (`ReinforceResult`).

    Raises:
      See `inference.objective.VariationalObjective`.

    Example:
      >>> q = build_q(params, x, n_particles=10).observe(key)
      >>> lb = elbo(model, {"x": x}, variational=q, axis=0)
      >>> loss = jnp.mean(lb.sgvb())
    """
    return EvidenceLowerBoundObjective(meta_bn, observed, latent, axis, variational)
