"""The SG-MCMC sampling driver: epochs of minibatches in `lax.scan`, chains by `vmap`, thinned
samples pulled to the host as it goes.

One jitted call runs about one epoch for every chain (`records_per_call * thin` steps, the least
multiple of `thin` that covers the `N // batch_size` minibatches); the samples it keeps come back to
the host after each call, so device memory holds one call's samples at most. Each chain reshuffles
the data with its own key at the start of every epoch; the `N mod batch_size` examples left over
by an epoch's permutation change from epoch to epoch, so no example is left out systematically.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["SGMCMCResult", "sample"]


class SGMCMCResult(NamedTuple):
    """What `sample` returns.

    Attributes:
      samples: `record_fn(position)` at every kept step, numpy arrays on the host with leading axes
        `[n_chains, n_samples]` (by default `{name: [n_chains, n_samples, *latent_shape]}`).
      info: the sampler's Info at every kept step, numpy, leading axes `[n_chains, n_samples]`.
      state: the final sampler state on the device, leading axis `[n_chains]` (to continue a run).
    """

    samples: Any
    info: Any
    state: Any


def _check_data(data: Mapping[str, Any], batch_size: int) -> tuple[dict, int]:
    if not isinstance(data, Mapping) or not data:
        raise TypeError("data must be a non-empty dict {name: array} of the training set")
    data = {name: jnp.asarray(value) for name, value in data.items()}
    sizes = {name: (value.shape[0] if value.ndim else None) for name, value in data.items()}
    n = next(iter(sizes.values()))
    if n is None or any(size != n for size in sizes.values()):
        raise ValueError(f"every data array needs the same leading (data) axis; got sizes {sizes}")
    if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an int in [1, {n}] (the data size), got {batch_size!r}")
    return data, n


def _init_states(sampler, init: Mapping[str, Any], n_chains: int, is_init_batched: bool):
    init = {name: jnp.asarray(value) for name, value in init.items()}
    if is_init_batched:
        for name, value in init.items():
            if value.ndim == 0 or value.shape[0] != n_chains:
                raise ValueError(f"init[{name!r}] has shape {value.shape}, but is_init_batched needs a "
                                 f"leading [n_chains={n_chains}] axis")
    else:
        init = {name: jnp.broadcast_to(value, (n_chains, *value.shape)) for name, value in init.items()}
    return jax.vmap(sampler.init)(init)


@functools.lru_cache(maxsize=32)  # the same sampler and model_fn on new data: no recompilation
def _make_call(sampler, model_fn, record_fn, n, batch_size, thin, records_per_call):
    n_batches = n // batch_size

    def chain_step(state, perm, chain_key, t, data):
        key_perm, key_step = jax.random.split(jax.random.fold_in(chain_key, t))
        b = t % n_batches
        perm = lax.cond(b == 0, lambda: jax.random.permutation(key_perm, n), lambda: perm)
        index = lax.dynamic_slice(perm, (b * batch_size,), (batch_size,))
        meta_bn, observed = model_fn(jax.tree.map(lambda a: a[index], data))
        state, info = sampler.step(key_step, state, meta_bn, observed)
        return state, perm, info

    all_chains = jax.vmap(chain_step, in_axes=(0, 0, 0, None, None))

    def call(carry, chain_keys, data):
        def one_step(carry, _):
            states, perms, t = carry
            states, perms, info = all_chains(states, perms, chain_keys, t, data)
            return (states, perms, t + 1), info

        def block(carry, _):
            carry, infos = lax.scan(one_step, carry, None, length=thin)
            last_info = jax.tree.map(lambda x: x[-1], infos)
            return carry, (jax.vmap(record_fn)(carry[0].position), last_info)

        return lax.scan(block, carry, None, length=records_per_call)

    return jax.jit(call)


def sample(key: jax.Array, sampler, model_fn: Callable[[dict], tuple[Any, dict]], data: Mapping[str, Any],
           init: Mapping[str, Any], *, batch_size: int, n_epochs: int, n_burnin_epochs: int = 0,
           thin: int = 1, n_chains: int = 1, is_init_batched: bool = False,
           record_fn: Callable[[dict], Any] | None = None, show_progress: bool = True) -> SGMCMCResult:
    """Runs SG-MCMC chains over epochs of shuffled minibatches of `data`.

    Args:
      key: a JAX PRNG key; chain c uses `split(key, n_chains)[c]`, and step t `fold_in` of it.
      sampler: an `SGLD`, `PSGLD`, `SGHMC` or `SGNHT` (anything with `init` and `step`).
      model_fn: `batch -> (meta_bn, observed)`, where `batch` is `data` restricted to a minibatch
        (`{name: [batch_size, ...]}`); the model should rescale its likelihood by
        `N / batch_size` (`inference.sgmcmc.gradients.scaled_log_joint`). Traced once.
      data: `{name: array [N, ...]}`, the training set (all arrays share the leading axis N).
      init: `{latent name: array}`, one start for all chains, or with a leading `[n_chains]` axis
        when `is_init_batched`.
      batch_size: examples per minibatch, in `[1, N]`.
      n_epochs: how many sampling "epochs" (jitted calls of `records_per_call * thin` steps, one
        pass over the `N // batch_size` minibatches when `thin` divides it) to run and record.
      n_burnin_epochs: epochs run first and not recorded.
      thin: keep one sample every `thin` steps.
      n_chains: chains run in parallel (vmapped).
      is_init_batched: whether `init` has a leading `[n_chains]` axis.
      record_fn: `position -> pytree` stored for each kept sample (default: the position), e.g.
        test-set predictions instead of all weights.
      show_progress: show a tqdm bar over epochs (when tqdm is installed).

    Returns:
      An `SGMCMCResult`; `n_samples = n_epochs * ceil((N // batch_size) / thin)`.

    Raises:
      ValueError: data arrays of different lengths, a bad `batch_size`, `n_epochs`, `thin`,
        `n_chains`, or an `init` without the chain axis `is_init_batched` asks for.

    Example:
      >>> result = sample(key, SGHMC(1e-4), model_fn, {"x": x, "y": y}, init, batch_size=100,
      ...                 n_epochs=50, n_burnin_epochs=10, n_chains=4)
      >>> result.samples["w"].shape            # [4, 50 * ceil(N // 100 / 1), *w.shape]
    """
    data, n = _check_data(data, batch_size)
    for name, value, low in [("n_epochs", n_epochs, 1), ("n_burnin_epochs", n_burnin_epochs, 0),
                             ("thin", thin, 1), ("n_chains", n_chains, 1)]:
        if not (isinstance(value, int) and value >= low):
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    record_fn = _identity if record_fn is None else record_fn
    records_per_call = math.ceil((n // batch_size) / thin)
    call = _make_call(sampler, model_fn, record_fn, n, batch_size, thin, records_per_call)
    states = _init_states(sampler, init, n_chains, is_init_batched)
    carry = (states, jnp.zeros((n_chains, n), jnp.int32), jnp.zeros((), jnp.int32))
    chain_keys = jax.random.split(key, n_chains)
    kept, infos = [], []
    for epoch in _progress(range(n_burnin_epochs + n_epochs), show_progress, type(sampler).__name__):
        carry, (records, info) = call(carry, chain_keys, data)
        if epoch >= n_burnin_epochs:  # to the host now: device memory holds one call's records
            kept.append(jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), records))
            infos.append(jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), info))
    concat = lambda *xs: np.concatenate(xs, axis=1)
    return SGMCMCResult(jax.tree.map(concat, *kept), jax.tree.map(concat, *infos), carry[0])


def _identity(position):
    return position


def _progress(iterable, show: bool, description: str):
    if not show:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return iterable
    return tqdm(iterable, desc=f"{description} epochs")
