"""The importance weighted objective (IWAE bound) with its SGVB, VIMCO and DReG estimators."""

from __future__ import annotations

from typing import Any, Mapping

import jax

from inference import estimators
from inference.objective import Latent, VariationalObjective, collect_latent

__all__ = ["ImportanceWeightedObjective", "importance_weighted_objective", "iw_objective",
           "require_score_function"]


def require_score_function(latent_nodes, estimator: str) -> None:
    """Raises ValueError when a latent node is reparameterised (a score-function estimator needs
    samples that carry no gradient)."""
    for name, node in (latent_nodes or {}).items():
        if node.is_reparameterized:
            raise ValueError(f"{estimator} is a score-function estimator, but latent {name!r} "
                             f"({type(node.distribution).__name__}) is reparameterised; build it with "
                             "is_reparameterized=False")


class ImportanceWeightedObjective(VariationalObjective):
    """The importance weighted bound `E[log (1/K) sum_k p(x, z_k) / q(z_k)]`, z_k ~ q.

    A tighter lower bound of log p(x) than the ELBO, increasing with K and approaching log p(x).
    See `VariationalObjective` for the arguments and attributes; `axis` (the axis of the K
    samples) is required.

    .. math::
      \\mathcal{L}_K(x) = \\mathbb{E}\\Big[\\log \\frac{1}{K} \\sum_{k=1}^K
      \\frac{p(x, z_k)}{q(z_k)}\\Big] \\le \\log p(x)

    Raises:
      ValueError: `axis` is None, or see `VariationalObjective`.

    References:
      Burda, Grosse and Salakhutdinov, `Importance Weighted Autoencoders
      <https://arxiv.org/abs/1509.00519>`_, 2015.
    """

    def __init__(self, meta_bn, observed: Mapping[str, Any], variational=None,
                 latent: Latent | None = None, axis: int | None = None):
        if axis is None:
            raise ValueError("the importance weighted objective is a multi-sample objective: give "
                             "`axis`, the axis of the K samples")
        super().__init__(meta_bn, observed, variational=variational, latent=latent, axis=axis)
        self._meta_bn = meta_bn
        self._observed = dict(observed)
        self._latent = collect_latent(variational, latent)

    @property
    def value(self) -> jax.Array:
        """The bound per data point (nats), `axis` reduced; to maximise."""
        return -estimators.iwae(self.log_joint, self.log_q, self.axis)

    def sgvb(self) -> jax.Array:
        """Surrogate cost for the reparameterised IWAE gradient (Burda et al., 2015); to minimise.

        Returns:
          `-value`, shape `log_weight.shape` without `axis`.

        Raises:
          ValueError: a latent of the variational net is not reparameterised.
        """
        self._require_reparameterized("sgvb")
        return estimators.iwae(self.log_joint, self.log_q, self.axis)

    def vimco(self) -> jax.Array:
        """Surrogate cost for VIMCO, the score-function gradient with leave-one-out control variates.

        See `inference.estimators.vimco` (Mnih and Rezende, 2016).

        Returns:
          The cost per data point, `axis` reduced; its value is `-value`.

        Raises:
          ValueError: fewer than 2 samples along `axis`, or a reparameterised latent.
        """
        require_score_function(self.latent_nodes, "vimco")
        return estimators.vimco(self.log_joint, self.log_q, self.axis)

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
          ValueError: a latent that is not reparameterised or not built with `use_path_derivative`.
        """
        self._require_reparameterized("dreg")
        for name, node in (self.latent_nodes or {}).items():
            if not node.use_path_derivative:
                raise ValueError(f"dreg needs log q with stopped variational parameters, but latent "
                                 f"{name!r} was built with use_path_derivative=False; build it with "
                                 "use_path_derivative=True")
        stopped = {name: jax.lax.stop_gradient(pair[0]) for name, pair in self._latent.items()}
        log_joint_model = self._meta_bn.observe(**self._observed, **stopped).log_joint()
        return estimators.dreg(self.log_joint, self.log_q, self.axis, log_joint_model)


def importance_weighted_objective(meta_bn, observed, variational=None, latent=None,
                                  axis=None) -> ImportanceWeightedObjective:
    """The importance weighted objective of `meta_bn` given `observed` (ZhuSuan's function name).

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the model's observed nodes.
      variational: a sampled variational `ppl.BayesianNet` with K samples along `axis`.
      latent: or `{name: (samples, log_q)}`.
      axis: the axis of the K samples (required).

    Returns:
      An `ImportanceWeightedObjective`: `.value`, `.sgvb()`, `.vimco()`, `.dreg()`.

    Example:
      >>> q = build_q(params, x, n_particles=50).observe(key)
      >>> iw = importance_weighted_objective(model, {"x": x}, variational=q, axis=0)
      >>> loss = jnp.mean(iw.sgvb())
    """
    return ImportanceWeightedObjective(meta_bn, observed, variational=variational, latent=latent, axis=axis)


iw_objective = importance_weighted_objective
