"""The importance weighted objective (IWAE bound) with its SGVB, VIMCO and DReG estimators."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from inference import estimators
from inference.objective import Latent, VariationalObjective
from ppl import BayesianNet, MetaBayesianNet

__all__ = ["ImportanceWeightedObjective", "importance_weighted_objective", "iw_objective"]


class ImportanceWeightedObjective(VariationalObjective):
    """The importance weighted bound `E[log (1/K) sum_k p(x, z_k) / q(z_k)]`, z_k ~ q.

    A tighter lower bound of log p(x) than the ELBO, increasing with K and approaching log p(x).
    See `VariationalObjective` for the arguments and attributes; `axis` (the axis of the K
    samples) is required. The object stands for the bound as an array (`jnp.mean(iw)`,
    `float(iw)`), as ZhuSuan's objectives were tensors of their value.

    .. math::
      \\mathcal{L}_K(x) = \\mathbb{E}\\Big[\\log \\frac{1}{K} \\sum_{k=1}^K
      \\frac{p(x, z_k)}{q(z_k)}\\Big] \\le \\log p(x)

    With `enumerate`, each particle's weight sums the enumerated latents out:
    `sum_y p(x, y, z_k) / q(z_k | y)` with z_k drawn for each y; for a latent of the variational
    net q(y) cancels, so enumerating it is the same as enumerating it in the model (see
    `inference.enumeration`).

    Raises:
      ValueError: `axis` is None, or see `VariationalObjective`.

    References:
      Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
      <https://arxiv.org/abs/1509.00519>`_, 2015.
    """

    requires_axis = True

    @property
    def _k_axis(self) -> int:
        """`axis`, which `requires_axis` makes an int."""
        assert self.axis is not None
        return self.axis
    name = "the importance weighted objective"

    @property
    def value(self) -> jax.Array:
        """The bound per data point (nats), `axis` reduced; to maximise."""
        return -self._cost()

    def _cost(self) -> jax.Array:
        return estimators.iwae(self._marginal_log_weight(), jnp.zeros(()), self._k_axis)

    def sgvb(self) -> jax.Array:
        """Surrogate cost for the reparameterised IWAE gradient (Burda et al., 2015); to minimise.

        Returns:
          `-value`, shape `log_weight.shape` without `axis`.

        Raises:
          ValueError: a latent of the variational net is not reparameterised.
        """
        self._require_reparameterized("sgvb")
        return self._cost()

    def vimco(self) -> jax.Array:
        """Surrogate cost for VIMCO, the score-function gradient with leave-one-out control variates.

        See `inference.estimators.vimco` (Mnih and Rezende, 2016).

        Returns:
          The cost per data point, `axis` reduced; its value is `-value`.

        Raises:
          ValueError: fewer than 2 samples along `axis`, a reparameterised latent, or an enumerated
            latent of the variational net (the values share their random numbers, so the density
            of a particle's samples across the values, which VIMCO's score needs, is unknown;
            enumerate it in the model instead, where q(y) cancels just the same).
        """
        self._require_no_enumerated_variational("vimco")
        self._require_score_function("vimco")
        return estimators.vimco(self.log_joint, self.log_q, self._k_axis)

    def dreg(self) -> jax.Array:
        """Surrogate cost for the doubly reparameterised gradient (Tucker et al., 2019).

        DReG needs log q evaluated with the variational parameters stopped, so that gradients reach
        q's parameters only through the samples. With a variational net, build every latent with
        `use_path_derivative=True` (its `log_prob` stops the distribution's parameters); this is
        exact when each latent's distribution parameters do not depend on other sampled latents
        (one stochastic layer). With `latent={name: (samples, log_q)}`, compute `log_q` with
        stopped parameters yourself, e.g. by building q a second time from
        `jax.lax.stop_gradient(params)` and observing it at the samples.
        The model is re-conditioned on the stopped samples for the model-parameter gradient.

        Returns:
          The cost per data point, `axis` reduced; its value is `-value`.

        Raises:
          ValueError: a latent that is not reparameterised or not built with `use_path_derivative`;
            an enumerated latent of the variational net (enumerate it in the model instead).
        """
        self._require_no_enumerated_variational("dreg")
        self._require_reparameterized("dreg")
        for name, node in (self.latent_nodes or {}).items():
            if not node.use_path_derivative:
                raise ValueError(f"dreg needs log q with stopped variational parameters, but latent "
                                 f"{name!r} was built with use_path_derivative=False; build it with "
                                 "use_path_derivative=True")
        _, log_joint_model = self._log_joint_of(self.observed, self._latent_values(stop_gradient=True))
        return estimators.dreg(self.log_joint, self.log_q, self._k_axis, log_joint_model)


    def _require_no_enumerated_variational(self, estimator: str) -> None:
        names = [name for name, node in self.enumerated.items() if node.is_variational]
        if names:
            raise ValueError(f"{estimator} with enumerated latents {names} of the variational net: the "
                             "values share their random numbers, so the density of a particle's samples "
                             "across the values is unknown. In this bound q(y) cancels: leave y out of "
                             "the variational net and enumerate it in the model, or use sgvb")


def importance_weighted_objective(
    meta_bn: MetaBayesianNet | Callable[[dict], jax.Array], observed: Mapping[str, Any],
    latent: Latent | None = None, axis: int | None = None, variational: BayesianNet | None = None, *,
    enumerate: str | Sequence[str] | None = None) -> ImportanceWeightedObjective:
    """The importance weighted objective of `meta_bn` given `observed` (ZhuSuan's function name).

    ZhuSuan's `zs.variational.importance_weighted_objective(meta_bn, observed, latent=None,
    axis=None, variational=None)`; `iw_objective` is its short name.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`, or a log-joint function of a dict of every
        node's value (ZhuSuan's alternative).
      observed: `{name: value}` for the model's observed nodes.
      latent: `{name: (samples, log_q)}`, or give `variational`.
      axis: the axis of the K samples (required; checked against the latents' particle axis).
      variational: a sampled variational `ppl.BayesianNet` with K samples along `axis`.
      enumerate: names of finite discrete latents to sum out exactly (see `inference.enumeration`).

    Returns:
      An `ImportanceWeightedObjective`: `.value` (the object stands for it), `.sgvb()`, `.vimco()`,
      `.dreg()`.

    Raises:
      See `inference.objective.VariationalObjective`.

    Example:
      >>> q = build_q(params, x, n_particles=50).observe(key)
      >>> iw = importance_weighted_objective(model, {"x": x}, variational=q, axis=0)
      >>> loss = jnp.mean(iw.sgvb())
    """
    return ImportanceWeightedObjective(meta_bn, observed, latent, axis, variational, enumerate=enumerate)


iw_objective = importance_weighted_objective
