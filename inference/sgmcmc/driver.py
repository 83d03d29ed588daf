"""The SG-MCMC sampling driver: chains by `vmap`, steps in `lax.scan`, one compiled program reused.

Two ways to give the target:

- **A model over minibatches** (`data` given): `model_fn(batch) -> (meta_bn, observed)`, or a plain
  `log_joint_fn(position, batch) -> scalar`. One jitted call runs about one epoch for every chain
  (`records_per_call * thinning` steps, the least multiple of `thinning` that covers the
  `N // batch_size` minibatches); its kept samples come back to the host after each call, so
  device memory holds one call's samples at most. Each chain reshuffles the data with its own key
  at the start of every epoch; the `N mod batch_size` examples left over change from epoch to
  epoch. Sizes are in epochs (`n_epochs`, `n_warmup_epochs`).
- **A log-joint function** (`data=None`): `log_joint_fn(position) -> scalar` (ZhuSuan's
  `sgmcmc.sample(log_joint, observed, latent)` with the observations inside the function). Sizes
  are in steps (`n_samples` kept after `n_warmup`, every `thinning`-th step kept).

The compiled call is looked up in `inference.compile_cache.PROGRAMS` by the sampler's type and
configuration (a numeric learning rate is traced, not baked in), the model function's code and
closure, `record_fn`, the sizes and the shapes; the data, the starting states and the keys are
traced, so later calls with new data of the same shapes compile nothing.

Randomness: chain c uses `split(key, n_chains)[c]`; step t draws from `fold_in(chain key, t)`.
`resume=result.state` continues the chains (positions, sampler state, data order, step count), so
two runs resumed one from the other equal one longer run with the same key.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import numbers
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from inference.compile_cache import PROGRAMS, static_key
from inference.deprecation import caller_stacklevel, renamed_arguments
from inference.mcmc_result import MCMCResult

__all__ = ["SGMCMCResult", "SGMCMCState", "sample"]

SGMCMCResult = MCMCResult   # the former name of the result type (now shared by every MCMC driver)


class SGMCMCState(NamedTuple):
    """Where SG-MCMC chains stopped (`MCMCResult.state`; pass it back as `resume=`).

    Attributes:
      sampler: the sampler's state (e.g. `SGHMCState`), leaves with a leading `[n_chains]` axis.
      permutation: `[n_chains, N]` int32, each chain's data order in the current epoch
        (`[n_chains, 0]` without data).
      step: `[]` int32, steps taken: the position in the key stream.
    """

    sampler: Any
    permutation: jax.Array
    step: jax.Array


def _check_data(data: Mapping[str, Any], batch_size: int | None) -> tuple[dict, int, int]:
    if not isinstance(data, Mapping) or not data:
        raise TypeError("data must be a non-empty dict {name: array} of the training set")
    data = {name: jnp.asarray(value) for name, value in data.items()}
    sizes = {name: (value.shape[0] if value.ndim else None) for name, value in data.items()}
    n = next(iter(sizes.values()))
    if n is None or any(size != n for size in sizes.values()):
        raise ValueError(f"every data array needs the same leading (data) axis; got sizes {sizes}")
    if isinstance(batch_size, bool) or not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an int in [1, {n}] (the data size), got {batch_size!r}")
    return data, n, batch_size


def _model_kind(model: Callable, has_data: bool) -> str:
    """"model_fn" (`batch -> (meta_bn, observed)`), "batch_log_joint" (`(position, batch) -> scalar`)
    or "log_joint" (`position -> scalar`), from the number of required positional parameters."""
    if not callable(model):
        raise TypeError(f"the model must be a function, got {type(model).__name__}")
    try:
        parameters = inspect.signature(model).parameters.values()
        n_args = sum(1 for p in parameters if p.default is p.empty
                     and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    except (TypeError, ValueError):   # builtins without a signature
        n_args = 1
    if not has_data:
        if n_args != 1:
            raise TypeError("without data, the model must be log_joint_fn(position) -> scalar; got a "
                            f"function of {n_args} required arguments")
        return "log_joint"
    if n_args not in (1, 2):
        raise TypeError("with data, the model must be model_fn(batch) -> (meta_bn, observed) or "
                        f"log_joint_fn(position, batch) -> scalar; got a function of {n_args} required "
                        "arguments")
    return "model_fn" if n_args == 1 else "batch_log_joint"


def _init_states(sampler, init: Mapping[str, Any], n_chains: int, is_init_batched: bool):
    if not isinstance(init, Mapping) or not init:
        raise TypeError(f"init must be a non-empty dict {{latent name: array}}, got {init!r}")
    init = {name: jnp.asarray(value) for name, value in init.items()}
    if is_init_batched:
        for name, value in init.items():
            if value.ndim == 0 or value.shape[0] != n_chains:
                raise ValueError(f"init[{name!r}] has shape {value.shape}, but is_init_batched needs a "
                                 f"leading [n_chains={n_chains}] axis")
    else:
        init = {name: jnp.broadcast_to(value, (n_chains, *value.shape)) for name, value in init.items()}
    return jax.vmap(sampler.init)(init)


def _sampler_key(sampler) -> tuple:
    """The sampler's type and configuration; a numeric learning rate is left out (it is traced)."""
    items = sorted((name, value) for name, value in vars(sampler).items()
                   if not (name == "learning_rate" and _is_traced_rate(value)))
    return (type(sampler), tuple((name, static_key(value)) for name, value in items))


def _is_traced_rate(value) -> bool:
    return isinstance(value, numbers.Real) or (hasattr(value, "shape") and jnp.shape(value) == ())


def _with_learning_rate(sampler, learning_rate):
    if learning_rate is None:
        return sampler
    sampler = copy.copy(sampler)
    sampler.learning_rate = learning_rate
    return sampler


def _gradient_step(sampler, model, kind: str):
    """`(key, state, batch) -> (state, info)` for the model's kind."""
    if kind == "model_fn":
        def step(key, state, batch):
            meta_bn, observed = model(batch)
            return sampler.step(key, state, meta_bn, observed)
    elif kind == "batch_log_joint":
        def step(key, state, batch):
            return sampler.update(key, state, jax.grad(lambda position: model(position, batch)))
    else:
        def step(key, state, batch):
            return sampler.update(key, state, jax.grad(model))
    return step


def _build_call(sampler, model, kind, record_fn, n, batch_size, thinning, records_per_call, has_records):
    """The jitted call: `(carry, chain_keys, data, learning_rate) -> (carry, (records, infos))`."""
    n_batches = max(n // batch_size, 1) if n else 1

    def chain_step(step_fn, state, perm, chain_key, t, data):
        key_perm, key_step = jax.random.split(jax.random.fold_in(chain_key, t))
        if n:
            b = t % n_batches
            shuffle = lambda: jax.random.permutation(key_perm, n).astype(perm.dtype)   # int32 under x64 too
            perm = lax.cond(b == 0, shuffle, lambda: perm)
            index = lax.dynamic_slice(perm, (b * batch_size,), (batch_size,))
            batch = jax.tree.map(lambda a: a[index], data)
        else:
            batch = None
        state, info = step_fn(key_step, state, batch)
        return state, perm, info

    def call(carry, chain_keys, data, learning_rate):
        step_fn = _gradient_step(_with_learning_rate(sampler, learning_rate), model, kind)
        all_chains = jax.vmap(lambda *a: chain_step(step_fn, *a), in_axes=(0, 0, 0, None, None))

        def one_step(carry, _):
            states, perms, t = carry
            states, perms, info = all_chains(states, perms, chain_keys, t, data)
            return (states, perms, t + 1), info

        def block(carry, _):
            carry, infos = lax.scan(one_step, carry, None, length=thinning)
            if not has_records:
                return carry, None
            last_info = jax.tree.map(lambda x: x[-1], infos)
            last_info = last_info._replace(is_rejected=jnp.sum(infos.is_rejected, axis=0))   # per block
            return carry, (jax.vmap(record_fn)(carry[0].position), last_info)

        return lax.scan(block, carry, None, length=records_per_call)

    return jax.jit(call)


def sample(key: jax.Array, sampler: Any, model: Callable, data: Mapping[str, Any] | None = None,
           init: Mapping[str, Any] | None = None, *, batch_size: int | None = None,
           n_epochs: int | None = None, n_warmup_epochs: int = 0, n_samples: int | None = None,
           n_warmup: int = 0, thinning: int = 1,
           n_chains: int = 1, is_init_batched: bool = False, record_fn: Callable[[dict], Any] | None = None,
           progress_bar: bool = True, resume: SGMCMCState | None = None, **deprecated) -> MCMCResult:
    """Runs SG-MCMC chains, over epochs of shuffled minibatches of `data` or on a log-joint function.

    Args:
      key: a JAX PRNG key; chain c uses `split(key, n_chains)[c]`, and step t `fold_in` of it.
      sampler: an `SGLD`, `PSGLD`, `SGHMC` or `SGNHT` (anything with `init`, `update` and `step`).
      model: with `data`: `model_fn(batch) -> (meta_bn, observed)` (the model should rescale its
        likelihood by `N / batch_size`, `inference.sgmcmc.gradients.scaled_log_joint`), or
        `log_joint_fn(position, batch) -> scalar`; without: `log_joint_fn(position) -> scalar`.
        Told apart by the number of required positional parameters. Traced once per program.
      data: `{name: array [N, ...]}`, the training set (all arrays share the leading axis N), or None.
      init: `{latent name: array}`, one start for all chains, or with a leading `[n_chains]` axis
        when `is_init_batched` (ignored with `resume`).
      batch_size: examples per minibatch, in `[1, N]` (with data).
      n_epochs: with data, the "epochs" (jitted calls of `records_per_call * thinning` steps, one
        pass over the `N // batch_size` minibatches when `thinning` divides it) run and recorded.
      n_warmup_epochs: with data, epochs run first and not recorded (`n_burnin_epochs` deprecated).
      n_samples: without data, the draws kept per chain.
      n_warmup: without data, the steps run first and not recorded.
      thinning: keep one sample every `thinning` steps (`thin` is a deprecated alias).
      n_chains: chains run in parallel (vmapped); taken from `resume` when given.
      is_init_batched: whether `init` has a leading `[n_chains]` axis.
      record_fn: `position -> pytree` stored for each kept sample (default: the position), e.g.
        test-set predictions instead of all weights.
      progress_bar: a tqdm bar over the calls (`show_progress` is a deprecated alias).
      resume: the `state` of an earlier result of the same sampler and model: continue from there.

    Returns:
      An `MCMCResult` (`samples, info = result` unpacks): `samples` is `record_fn(position)` at
      every kept step (numpy, leading axes `[n_chains, n_samples]`; with data `n_samples =
      n_epochs * ceil((N // batch_size) / thinning)`), `info` the sampler's Info at the kept steps,
      `state` an `SGMCMCState` on the device.

    Raises:
      ValueError: data arrays of different lengths, bad sizes, an `init` without the chain axis
        `is_init_batched` asks for, sizes of the other mode (epochs without data, steps with it).
      TypeError: a model function of the wrong arity, or a bad `init`/`data`.

    Example:
      >>> result = sample(key, SGHMC(1e-4), model_fn, {"x": x, "y": y}, init, batch_size=100,
      ...                 n_epochs=50, n_warmup_epochs=10, n_chains=4)
      >>> result.samples["w"].shape            # [4, 50 * ceil(N // 100 / 1), *w.shape]
      >>> more = sample(key, SGHMC(1e-4), model_fn, {"x": x, "y": y}, batch_size=100, n_epochs=50,
      ...               resume=result.state)   # the next 50 epochs of the same chains
    """
    renamed = renamed_arguments(deprecated, {"thin": "thinning", "show_progress": "progress_bar",
                                             "n_burnin_epochs": "n_warmup_epochs"}, "sgmcmc.sample")
    thinning = renamed.get("thinning", thinning)
    progress_bar = renamed.get("progress_bar", progress_bar)
    n_warmup_epochs = renamed.get("n_warmup_epochs", n_warmup_epochs)
    kind = _model_kind(model, data is not None)
    if data is not None:
        data, n, batch_size = _check_data(data, batch_size)
        if n_samples is not None or n_warmup:
            raise ValueError("with data, sizes are in epochs: give n_epochs and n_warmup_epochs, not "
                             "n_samples / n_warmup")
        _check_ints(n_epochs=(n_epochs, 1), n_warmup_epochs=(n_warmup_epochs, 0), thinning=(thinning, 1),
                    n_chains=(n_chains, 1))
        assert n_epochs is not None  # _check_ints raised otherwise
        records_per_call = math.ceil((n // batch_size) / thinning)
        plan = [(records_per_call, thinning, epoch >= n_warmup_epochs)
                for epoch in range(n_warmup_epochs + n_epochs)]
    else:
        if n_epochs is not None or n_warmup_epochs or batch_size is not None:
            raise ValueError("without data, sizes are in steps: give n_samples and n_warmup, not epochs or "
                             "batch_size")
        _check_ints(n_samples=(n_samples, 1), n_warmup=(n_warmup, 0), thinning=(thinning, 1),
                    n_chains=(n_chains, 1))
        assert n_samples is not None  # _check_ints raised otherwise
        data, n, batch_size = {}, 0, 0
        plan = ([(n_warmup, 1, False)] if n_warmup else []) + [(n_samples, thinning, True)]
    record_fn = _identity if record_fn is None else record_fn
    carry, n_chains = _start(sampler, init, n_chains, is_init_batched, n, resume)
    chain_keys = jax.random.split(key, n_chains)
    rate = sampler.learning_rate if _is_traced_rate(getattr(sampler, "learning_rate", None)) else None
    rate = None if rate is None else jnp.asarray(rate, jnp.result_type(float))
    kept, infos = [], []
    for records, block, has_records in _progress(plan, progress_bar, type(sampler).__name__, bool(n)):
        program_key = ("sgmcmc", _sampler_key(sampler), static_key(model), kind, static_key(record_fn), n,
                       batch_size, block, records, has_records, n_chains, _abstract((carry, data)))
        call = PROGRAMS.get(program_key, functools.partial(
            _build_call, sampler, model, kind, record_fn, n, batch_size, block, records, has_records))
        carry, outputs = call(carry, chain_keys, data, rate)
        if has_records:   # to the host now: device memory holds one call's records
            kept.append(jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), outputs[0]))
            infos.append(jax.tree.map(lambda x: np.swapaxes(np.asarray(x), 0, 1), outputs[1]))
    concat = lambda *xs: np.concatenate(xs, axis=1)
    info = jax.tree.map(concat, *infos)
    _warn_rejected(info, type(sampler).__name__)
    return MCMCResult(jax.tree.map(concat, *kept), info, SGMCMCState(*carry))


def _warn_rejected(info, name: str) -> None:
    """Warns, naming the chains, when steps were rejected for a non-finite gradient."""
    rejected = np.sum(np.asarray(info.is_rejected), axis=-1)
    if rejected.any():
        chains = np.flatnonzero(rejected).tolist()
        counts = rejected[chains].tolist()
        warnings.warn(f"{name}: chain(s) {chains} rejected {counts} steps (kept part of the run) whose "
                      "log-joint gradient held NaN or inf; those steps kept the previous position. "
                      "Lower the learning rate or check the model (a latent outside its support?).",
                      UserWarning, stacklevel=caller_stacklevel())


def _start(sampler, init, n_chains, is_init_batched, n, resume):
    """The first carry `(states, permutations, step)` and the number of chains."""
    if resume is not None:
        if not isinstance(resume, SGMCMCState):
            raise TypeError(f"resume must be an SGMCMCState (result.state), got {type(resume).__name__}")
        chains = int(resume.permutation.shape[0])
        if resume.permutation.shape[1] != n:
            raise ValueError(f"resume's data order covers {resume.permutation.shape[1]} examples, the data "
                             f"{n}")
        return (resume.sampler, resume.permutation, resume.step), chains
    states = _init_states(sampler, init, n_chains, is_init_batched)
    return (states, jnp.zeros((n_chains, n), jnp.int32), jnp.zeros((), jnp.int32)), n_chains


def _check_ints(**checks) -> None:
    for name, (value, low) in checks.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _abstract(tree):
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple(jax.typeof(x) for x in leaves)


def _identity(position):
    return position


def _progress(iterable, show: bool, description: str, per_epoch: bool):
    if not show:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return iterable
    return tqdm(iterable, desc=f"{description} {'epochs' if per_epoch else 'calls'}")
