"""`predictive`: draws of a model's unobserved nodes given posterior samples or a variational net.

Posterior predictive checks, predictions for new inputs, reconstructions and generated data all
come from re-running the model with some nodes fixed: the observations, and each posterior draw of
the latents. `predictive` does this for every draw at once (`jax.vmap`), in chunks of `chunk_size`
draws (`lax.map`) so that memory holds one chunk's intermediates, inside one jitted program.

Posterior samples are given as MCMC returns them: each latent's values in its own (constrained)
space, with leading axes `[n_chains, n_samples]` (or a flat `[n_samples]`); the draws come back
with the same leading axes. Draw i uses `fold_in(key, i)` (i counts draws in row-major order), so
the same key gives the same draws whatever the chunk size.

References:
  Gelman, Meng and Stern, `Posterior predictive assessment of model fitness via realized
  discrepancies <https://www.jstor.org/stable/24306036>`_, Statistica Sinica 1996; the NumPyro
  `Predictive` class (`numpyro.infer.util`), whose role this plays.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ppl import MetaBayesianNet
from ppl.bayesian_net import StochasticTensor

__all__ = ["chunked_map", "node_kinds", "predictive"]


def chunked_map(fn: Callable, xs: Any, chunk_size: int | None = None) -> Any:
    """`jax.vmap(fn)(xs)` computed `chunk_size` rows at a time with `lax.map`.

    Args:
      fn: a function of one row of `xs` (a pytree).
      xs: a pytree of arrays with a shared leading axis `[n, ...]`.
      chunk_size: rows per vectorised chunk; None: all at once. The last chunk is padded with
        copies of row 0, whose results are dropped.

    Returns:
      `fn`'s outputs stacked along a leading axis `[n, ...]`.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    chunk = n if chunk_size is None else min(int(chunk_size), n)
    n_chunks = math.ceil(n / chunk)
    if n_chunks == 1:
        return jax.vmap(fn)(xs)
    index = jnp.concatenate([jnp.arange(n), jnp.zeros(n_chunks * chunk - n, jnp.int32)])
    chunks = jax.tree.map(lambda x: x[index].reshape(n_chunks, chunk, *x.shape[1:]), xs)
    out = lax.map(jax.vmap(fn), chunks)
    return jax.tree.map(lambda y: y.reshape(n_chunks * chunk, *y.shape[2:])[:n], out)


def node_kinds(meta_bn: MetaBayesianNet, observed: Mapping[str, Any], key: jax.Array | None = None) -> dict:
    """`{name: (kind, shape, dtype)}` for every node, kind "observed", "latent" or "deterministic".

    The model is traced abstractly (`jax.eval_shape`): nothing is computed.
    """
    kinds = {}

    def probe(key):
        bn = meta_bn.observe(key, **observed)
        for name, node in bn.nodes.items():
            if not isinstance(node, StochasticTensor):
                kinds[name] = "deterministic"
            else:
                kinds[name] = "observed" if node.is_observed else "latent"
        return {name: node.value for name, node in bn.nodes.items()}

    shapes = jax.eval_shape(probe, jax.random.key(0) if key is None else key)
    return {name: (kinds[name], tuple(s.shape), s.dtype) for name, s in shapes.items()}


def _check_samples(samples: Mapping[str, Any], kinds: dict,
                   observed: Mapping[str, Any]) -> tuple[dict, tuple]:
    """Samples as arrays, and their shared leading draw axes (`[n_samples]` or `[n_chains, n_samples]`)."""
    samples = {name: jnp.asarray(value) for name, value in samples.items()}
    lead = None
    for name, value in samples.items():
        if name in observed:
            raise ValueError(f"node {name!r} is given both in observed and in samples")
        if name not in kinds:
            raise ValueError(f"samples has {name!r}, but the model has no such node; its nodes are "
                             f"{list(kinds)}")
        kind, shape, _ = kinds[name]
        if kind != "latent":
            raise ValueError(f"samples[{name!r}]: node {name!r} is {kind}; samples give latent stochastic "
                             "nodes")
        n_lead = value.ndim - len(shape)
        if n_lead not in (1, 2) or tuple(value.shape[n_lead:]) != shape:
            raise ValueError(f"samples[{name!r}] has shape {value.shape}; expected [n_samples, "
                             f"*{list(shape)}] or [n_chains, n_samples, *{list(shape)}] (node {name!r} has "
                             f"shape {shape})")
        if lead is not None and tuple(value.shape[:n_lead]) != lead:
            raise ValueError(f"samples[{name!r}] has leading draw axes {value.shape[:n_lead]}, but other "
                             f"nodes have {lead}; every node needs the same [n_chains, n_samples] axes")
        lead = tuple(value.shape[:n_lead])
    if lead is None:
        raise ValueError("samples is empty; give posterior draws of at least one latent node")
    return samples, lead


def _check_variational(variational: MetaBayesianNet, kinds: dict, key: jax.Array) -> None:
    for name, (kind, _, _) in node_kinds(variational, {}, key).items():
        if kind == "latent" and kinds.get(name, ("missing",))[0] != "latent":
            found = kinds[name][0] if name in kinds else "absent"
            raise ValueError(f"the variational net samples {name!r}, which is {found} in the model; its "
                             f"sampled nodes must be latent nodes of the model")


def _return_names(return_nodes, kinds: dict, given: set) -> list[str]:
    if return_nodes is None:
        return [name for name, (kind, _, _) in kinds.items() if kind != "observed" and name not in given]
    names = [return_nodes] if isinstance(return_nodes, str) else list(return_nodes)
    unknown = [name for name in names if name not in kinds]
    if unknown:
        raise ValueError(f"return_nodes {unknown} are not nodes of the model; its nodes are {list(kinds)}")
    return names


def predictive(key: jax.Array, meta_bn: MetaBayesianNet, observed: Mapping[str, Any] | None = None, *,
               samples: Mapping[str, Any] | Any | None = None, variational: MetaBayesianNet | None = None,
               n_samples: int | None = None, return_nodes: str | Sequence[str] | None = None,
               chunk_size: int | None = None) -> dict[str, jax.Array]:
    """Draws the model's unobserved nodes (stochastic and deterministic) for each posterior draw.

    Three sources of latents: posterior `samples` (e.g. `HMC.sample`'s), a `variational` meta net
    (each draw samples it, then the model given its latents), or neither (the prior predictive,
    `n_samples` draws of the model given `observed` alone). Latents missing from `samples` are
    drawn from the model given the others.

    Args:
      key: a JAX PRNG key; draw i uses `fold_in(key, i)`.
      meta_bn: the model, a `ppl.MetaBayesianNet` (built for the inputs to predict at).
      observed: `{name: value}` held fixed in every draw (default none).
      samples: `{latent name: [n_chains, n_samples, *shape]}` (or `[n_samples, *shape]`) in the
        latent's own space, as MCMC returns them; or a result with a `.samples` field.
      variational: a `ppl.MetaBayesianNet` q whose sampled nodes are latents of the model.
      n_samples: the number of draws without `samples` (required then; not allowed with them).
      return_nodes: a node name or names to return (default: every node that is neither observed
        nor given in `samples`).
      chunk_size: draws computed at once (vectorised); None: all. Bounds memory for large draws.

    Returns:
      `{name: array}` with leading axes `[n_chains, n_samples]` or `[n_samples]` (as the samples
      have them) followed by the node's shape.

    Raises:
      ValueError: both `samples` and `variational`; a missing or superfluous `n_samples`; a sample
        for a node the model lacks, an observed or deterministic node, or of the wrong shape (the
        message names the node and the shapes); unknown `return_nodes`; a bad `chunk_size`.
      TypeError: `meta_bn` or `variational` is not a `ppl.MetaBayesianNet`.

    Example:
      >>> samples, info = inference.HMC(...).sample(key_hmc, build_blr(x_train), {"y": y_train}, ...)
      >>> draws = inference.predictive(key, build_blr(x_test), samples=samples, return_nodes="y")
      >>> draws["y"].shape          # [n_chains, n_samples, n_test]
    """
    observed = dict(observed or {})
    for name, value in {"meta_bn": meta_bn, "variational": variational}.items():
        if value is not None and not isinstance(value, MetaBayesianNet):
            raise TypeError(f"{name} must be a ppl.MetaBayesianNet, got {type(value).__name__}")
    if samples is not None and hasattr(samples, "samples") and not isinstance(samples, Mapping):
        samples = samples.samples
    if samples is not None and not isinstance(samples, Mapping):
        raise TypeError(f"samples must be a dict {{latent name: draws}} or a result with .samples, got "
                        f"{type(samples).__name__}")
    if samples is not None and variational is not None:
        raise ValueError("give posterior samples or a variational net, not both")
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    kinds = node_kinds(meta_bn, observed, key)
    if samples is not None:
        if n_samples is not None:
            raise ValueError("n_samples comes from the samples' leading axes; leave it None with samples")
        samples, lead = _check_samples(samples, kinds, observed)
    else:
        if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int (the number of draws), got {n_samples!r}")
        samples, lead = {}, (int(n_samples),)
    if variational is not None:
        _check_variational(variational, kinds, key)
    names = _return_names(return_nodes, kinds, set(samples))
    flat = {name: value.reshape(-1, *value.shape[len(lead):]) for name, value in samples.items()}
    draw = _make_draw(meta_bn, observed, variational, names)
    run = jax.jit(lambda key, flat: chunked_map(draw, (_draw_keys(key, math.prod(lead)), flat), chunk_size))
    out = run(key, flat)
    return {name: value.reshape(*lead, *value.shape[1:]) for name, value in out.items()}


def _draw_keys(key: jax.Array, n: int) -> jax.Array:
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))


def _make_draw(meta_bn, observed, variational, names):
    def draw(inputs):
        key, sample = inputs
        if variational is not None:
            key_q, key = jax.random.split(key)
            q = variational.observe(key_q)
            sample = {name: node.value for name, node in q.latent_nodes().items()}
        bn = meta_bn.observe(key, **observed, **sample)
        return {name: bn[name].value for name in names}
    return draw
