"""`to_arviz`: MCMC output and the model as an ArviZ `InferenceData`, ready for `az.loo`/`az.waic`.

Groups filled: `posterior` (the samples), `sample_stats` (the known fields of any Info
NamedTuple, under ArviZ's names), `log_likelihood` (each observation's log-density at each draw,
computed from the model), `observed_data` and `posterior_predictive` (given, or drawn from the
model with `inference.predictive`).

References:
  Kumar, Carroll, Hartikainen and Martin, `ArviZ a unified library for exploratory analysis of
  Bayesian models in Python <https://doi.org/10.21105/joss.01143>`_, 2019; Vehtari, Gelman and
  Gabry, `Practical Bayesian model evaluation using leave-one-out cross-validation and WAIC
  <https://arxiv.org/abs/1507.04544>`_, 2017.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from inference.predictive import chunked_map, predictive
from ppl import MetaBayesianNet

if TYPE_CHECKING:
    import arviz

__all__ = ["SAMPLE_STATS_NAMES", "log_likelihood", "to_arviz"]

# Info field -> ArviZ sample_stats name; any other field is left out.
SAMPLE_STATS_NAMES = {
    "acceptance_rate": "acceptance_rate", "is_divergent": "diverging", "energy": "energy",
    "log_joint": "lp", "tree_depth": "tree_depth", "n_leapfrogs": "n_steps", "num_steps": "n_steps",
    "step_size": "step_size",
}


def _fields(info) -> dict:
    if info is None:
        return {}
    if isinstance(info, Mapping):
        return dict(info)
    if hasattr(info, "_asdict"):
        return info._asdict()
    return dict(vars(info))


def _sample_stats(info, lead: tuple[int, int]) -> dict | None:
    """The known per-draw (or per-chain, broadcast) fields of `info`, under ArviZ's names."""
    stats = {}
    for field, value in _fields(info).items():
        name = SAMPLE_STATS_NAMES.get(field)
        if name is None or name in stats or value is None:
            continue
        value = np.asarray(value)
        if value.shape[:2] == lead:
            stats[name] = value
        elif value.shape[:1] == lead[:1] and value.ndim == 1:        # one value per chain
            stats[name] = np.broadcast_to(value[:, None], lead)
    return stats or None


def _check_posterior(samples: Mapping[str, Any]) -> tuple[dict, tuple[int, int]]:
    posterior = {name: np.asarray(value) for name, value in samples.items()}
    if not posterior:
        raise ValueError("samples is empty")
    leads = {name: value.shape[:2] for name, value in posterior.items()}
    if any(value.ndim < 2 for value in posterior.values()) or len(set(leads.values())) > 1:
        raise ValueError(f"every sample needs the same leading [n_chains, n_samples] axes; got shapes "
                         f"{ {name: value.shape for name, value in posterior.items()} }")
    return posterior, next(iter(leads.values()))


def log_likelihood(meta_bn: MetaBayesianNet, observed: Mapping[str, Any], samples: Mapping[str, Any], *,
                   group_ndims: int | Mapping[str, int] = 0, chunk_size: int | None = None) -> dict:
    """Each observation's log-density at each posterior draw, for LOO and WAIC.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`.
      observed: `{name: value}`, the observations (the likelihood's nodes).
      samples: `{latent: [n_chains, n_samples, *shape]}` (or `[n_samples, *shape]`) for every
        latent of the model, in the latents' own space.
      group_ndims: rightmost batch axes of each observed node that form one observation (an int for
        all nodes, or per node); 0: every element of the node's batch shape is one observation
        (event axes are always part of it).
      chunk_size: draws computed at once (see `inference.predictive`).

    Returns:
      `{observed name: [*draw axes, *observation shape]}` in nats.

    Raises:
      ValueError: a latent of the model missing from `samples` (named), or bad sample shapes.
    """
    from inference.predictive import _check_samples, node_kinds
    kinds = node_kinds(meta_bn, observed)
    missing = [name for name, (kind, _, _) in kinds.items() if kind == "latent" and name not in samples]
    if missing:
        raise ValueError(f"log_likelihood needs a draw of every latent; samples lack {missing}")
    samples, lead = _check_samples(samples, kinds, observed)
    ndims = {name: group_ndims if isinstance(group_ndims, int) else group_ndims.get(name, 0)
             for name in observed}

    def one(sample):
        bn = meta_bn.observe(**observed, **sample)
        values = {}
        for name in observed:
            node = bn[name]
            log_prob = node.distribution.log_prob(node.value)
            values[name] = jnp.sum(log_prob, axis=tuple(range(-ndims[name], 0))) if ndims[name] else log_prob
        return values

    flat = {name: value.reshape(-1, *value.shape[len(lead):]) for name, value in samples.items()}
    out = jax.jit(lambda flat: chunked_map(one, flat, chunk_size))(flat)
    return {name: np.asarray(value).reshape(*lead, *value.shape[1:]) for name, value in out.items()}


def to_arviz(samples: Mapping[str, Any] | Any, info: Any = None, *, model: MetaBayesianNet | None = None,
             observed: Mapping[str, Any] | None = None, key: jax.Array | None = None,
             posterior_predictive: Mapping[str, Any] | None = None, group_ndims: int | Mapping[str, int] = 0,
             chunk_size: int | None = None) -> arviz.InferenceData:
    """Converts MCMC samples (and their Info, the model and data) to an ArviZ `InferenceData`.

    Args:
      samples: `{name: [n_chains, n_samples, ...]}`, or a result with `.samples` (and `.info`).
      info: any Info NamedTuple (e.g. `HMCSampleInfo`); its fields `acceptance_rate`,
        `is_divergent` (-> `diverging`), `energy`, `log_joint` (-> `lp`), `tree_depth`,
        `n_leapfrogs` or `num_steps` (-> `n_steps`) and `step_size` become `sample_stats` when they
        are per draw `[n_chains, n_samples]` or per chain `[n_chains]`; other fields are ignored.
      model: the `ppl.MetaBayesianNet` that was sampled; with `observed`, fills `log_likelihood`
        (per observation, see `log_likelihood`) and `observed_data`.
      observed: `{name: value}`, the observations the samples are conditioned on.
      key: with `model` and `observed`, draw `posterior_predictive` of the observed nodes.
      posterior_predictive: `{name: [n_chains, n_samples, ...]}` draws (e.g. from
        `inference.predictive`), used as given.
      group_ndims: see `log_likelihood`.
      chunk_size: draws computed at once for the log-likelihood and predictive draws.

    Returns:
      `arviz.InferenceData`. `az.loo(idata)` and `az.waic(idata)` work when the model has one
      observed node (pass `var_name` otherwise).

    Raises:
      ImportError: ArviZ is not installed (`pip install arviz`, an optional dependency).
      ValueError: samples without common `[n_chains, n_samples]` axes; `key` or `observed` without
        `model`; see also `log_likelihood` and `inference.predictive`.

    Example:
      >>> samples, info = hmc.sample(key_hmc, model, {"y": y}, n_samples=500, n_chains=4)
      >>> idata = inference.to_arviz(samples, info, model=model, observed={"y": y}, key=key_ppc)
      >>> az.loo(idata)
    """
    try:
        import arviz
    except ImportError as error:
        raise ImportError("to_arviz needs ArviZ, an optional dependency: pip install arviz") from error
    if hasattr(samples, "samples") and not isinstance(samples, Mapping):
        info = getattr(samples, "info", None) if info is None else info
        samples = samples.samples
    posterior, lead = _check_posterior(samples)
    if model is None and (observed is not None or key is not None):
        raise ValueError("observed and key are used with the model: pass model= as well")
    groups: dict[str, Any] = {"posterior": posterior, "sample_stats": _sample_stats(info, lead)}
    if model is not None and observed is not None:
        observed = dict(observed)
        groups["log_likelihood"] = log_likelihood(model, observed, posterior, group_ndims=group_ndims,
                                                  chunk_size=chunk_size)
        groups["observed_data"] = {name: np.asarray(value) for name, value in observed.items()}
        if key is not None and posterior_predictive is None:
            posterior_predictive = predictive(key, model, samples=posterior, return_nodes=list(observed),
                                              chunk_size=chunk_size)
    if posterior_predictive is not None:
        groups["posterior_predictive"] = {name: np.asarray(v) for name, v in posterior_predictive.items()}
    return arviz.from_dict(**{k: v for k, v in groups.items() if v is not None})

