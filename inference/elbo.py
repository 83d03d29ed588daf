"""The evidence lower bound and its SGVB gradient estimator."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax

from inference import enumeration, estimators
from inference.estimators import ReinforceResult, ReinforceState
from inference.objective import Latent, VariationalObjective
from ppl import BayesianNet, MetaBayesianNet

__all__ = ["EvidenceLowerBoundObjective", "elbo"]


class EvidenceLowerBoundObjective(VariationalObjective):
    """The ELBO, E_q[log p(x, z) - log q(z)], with its gradient estimators.

    See `VariationalObjective` for the arguments and attributes. As in ZhuSuan, the object stands
    for the bound: `jnp.mean(lb)`, `lb + 1` and `float(lb)` use `lb.value` (`lb.tensor`), and
    `lb.sgvb()` is the cost to minimise.

    .. math::
      \\mathcal{L}(x) = \\mathbb{E}_{q(z)}[\\log p(x, z) - \\log q(z)] \\le \\log p(x)

    With `enumerate`, the enumerated variational latents y are summed with their weights q(y)
    (`sum_y q(y) [log p(x, y, z) - log q(y) - log q(z | y)]`) and the enumerated model latents are
    summed out of p (see `inference.enumeration`).

    References:
      Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
    """

    name = "elbo"

    @property
    def value(self) -> jax.Array:
        """The lower bound per data point (nats), the particle `axis` averaged; to maximise."""
        return self._mean(enumeration.expectation(self.log_weight, self.enumerated_log_q,
                                                  self._n_enumerated_axes))

    def sgvb(self) -> jax.Array:
        """Surrogate cost for the reparameterised (SGVB) gradient; to minimise.

        Its gradient is the pathwise gradient of `-value` (Kingma and Welling, 2014), with the
        variational parameters' score term removed when latents use `use_path_derivative`
        (Roeder, Wu and Duvenaud, `Sticking the Landing <https://arxiv.org/abs/1703.09194>`_, 2017).

        Enumerated latents are summed exactly, so their part of the gradient is exact.

        Returns:
          The cost per data point: `-value`, shape `[*particles_and_batch]` without `axis`.

        Raises:
          ValueError: a latent of the variational net (other than an enumerated one) is not
            reparameterised.
        """
        self._require_reparameterized("sgvb")
        return -self.value

    def reinforce(self, baseline_state: ReinforceState, variance_reduction: bool = True,
                  baseline: jax.Array | None = None, decay: float = 0.8) -> ReinforceResult:
        """Score-function (REINFORCE / NVIL) surrogate cost, with the moving-average state in and out.

        ZhuSuan's `reinforce(variance_reduction, baseline, decay)`, with its hidden moving-average
        variable made explicit as `baseline_state` (start from `inference.reinforce_init()`). See
        `inference.estimators.reinforce` for the estimator, the meaning of `decay` and the shapes.
        With enumerated variational latents, the score-function estimate is made for each of their
        values and weighted by q(y), whose own gradient is exact (see
        `inference.enumeration.weighted_reinforce`).

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
        if not self._n_enumerated_axes:
            return estimators.reinforce(self.log_joint, self.log_q, baseline_state, axis=self.axis,
                                        variance_reduction=variance_reduction, baseline=baseline,
                                        decay=decay)
        result = enumeration.weighted_reinforce(
            self.log_joint, self.log_q, self.enumerated_log_q, self._n_enumerated_axes, baseline_state,
            variance_reduction=variance_reduction, baseline=baseline, decay=decay)
        return ReinforceResult(self._mean(result.cost), self._mean(result.baseline_cost), result.state)


def elbo(
    meta_bn: MetaBayesianNet | Callable[[dict], jax.Array], observed: Mapping[str, Any],
    latent: Latent | None = None, axis: int | None = None, variational: BayesianNet | None = None, *,
    enumerate: str | Sequence[str] | None = None) -> EvidenceLowerBoundObjective:
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
      enumerate: names of finite discrete latents to sum out exactly instead of sampling: latents of
        the variational net (q(y | x) weights the sum; the net is rebuilt at each value of y) or of
        the model only (marginalised out of p). See `inference.enumeration` for the shapes.

    Returns:
      An `EvidenceLowerBoundObjective`: `.value` (per data point; the object stands for it as an
      array), `.sgvb()` (cost) and `.reinforce(baseline_state, ...)` (`ReinforceResult`).

    Raises:
      See `inference.objective.VariationalObjective`.

    Example:
      >>> q = build_q(params, x, n_particles=10).observe(key)
      >>> lb = elbo(model, {"x": x}, variational=q, axis=0)
      >>> loss = jnp.mean(lb.sgvb())
      >>> # M2's unlabelled bound: y ~ q(y | x) summed out, z ~ q(z | x, y) drawn for each y
      >>> q_u = build_q(params, x_unlabelled, n_particles=1).observe(key)
      >>> lb_u = elbo(model_u, {"x": x_unlabelled}, variational=q_u, axis=0, enumerate=["y"])
    """
    return EvidenceLowerBoundObjective(meta_bn, observed, latent, axis, variational, enumerate=enumerate)
