"""The evidence lower bound and its SGVB gradient estimator."""

from __future__ import annotations

import jax

from inference.objective import VariationalObjective

__all__ = ["EvidenceLowerBoundObjective", "elbo"]


class EvidenceLowerBoundObjective(VariationalObjective):
    """The ELBO, E_q[log p(x, z) - log q(z)], with its gradient estimators.

    See `VariationalObjective` for the arguments and attributes.

    .. math::
      \\mathcal{L}(x) = \\mathbb{E}_{q(z)}[\\log p(x, z) - \\log q(z)] \\le \\log p(x)

    References:
      Kingma and Welling, `Auto-Encoding Variational Bayes <https://arxiv.org/abs/1312.6114>`_, 2014.
    """

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


def elbo(meta_bn, observed, variational=None, latent=None, axis=None) -> EvidenceLowerBoundObjective:
    """The evidence lower bound of `meta_bn` given `observed`, under the variational posterior.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`.
      observed: `{name: value}` for the model's observed nodes.
      variational: a sampled variational `ppl.BayesianNet` (its unobserved nodes are the latents).
      latent: or `{name: (samples, log_q)}`.
      axis: the particle axis to average over (None: a single sample, no particle axis).

    Returns:
      An `EvidenceLowerBoundObjective`: `.value` (per data point) and `.sgvb()` (cost).

    Example:
      >>> q = build_q(params, x, n_particles=10).observe(key)
      >>> lb = elbo(model, {"x": x}, variational=q, axis=0)
      >>> loss = jnp.mean(lb.sgvb())
    """
    return EvidenceLowerBoundObjective(meta_bn, observed, variational=variational, latent=latent,
                                       axis=axis)
