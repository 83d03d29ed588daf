"""The SG-MCMC sampling driver: chains by `vmap`, steps in `lax.scan`, one compiled program reused.

Two ways to give the target:

- **A model over minibatches** (`data` given): `model_fn(batch) -> (meta_bn, observed)`, or a plain
  `log_joint_fn(position, batch) -> scalar`. One jitted call runs about one epoch for every chain
  (`records_per_call * thinning` steps, the least multiple of `thinning` that covers the
  `N // batch_size` minibatches); its kept samples come back to the host after each call, so
  device memory holds one call's samples at most. Each chain reshuffles the data with its own key
  at the start of every epoch; the `N mod batch_size` examples left over change from epoch to
  epoch. Sizes are in epochs (`n_epochs`, `n_warmup_epochs`).
  With a `model_fn`, constrained latents (gamma, beta, half-normal, dirichlet, ...) move on the
  unconstrained space, exactly as for HMC (`inference.sgmcmc.latents`): `init` is given and the
  samples come back on the constrained space, and no sample leaves the support. With a log-joint
  function the positions are whatever the function takes, used as given (nothing is transformed).
- **A log-joint function** (`data=None`): `log_joint_fn(position) -> scalar` (ZhuSuan's
  `sgmcmc.sample(log_joint, observed, latent)` with the observations inside the function). Sizes
  are in steps (`n_samples` kept after `n_warmup`, every `thinning`-th step kept).

The compiled call is looked up in `inference.compile_cache.PROGRAMS` by the sampler's type and
configuration (a numeric learning rate is traced, not baked in), the model function's code and
closure, `record_fn`, the sizes and the shapes; the data, the starting states and the keys are
traced, so later calls with new data of the same shapes compile nothing.

Several devices: `mesh=` a `jax.sharding.Mesh` with a "chains" axis (the chains are split over
it), a "data" axis (each chain's minibatch is split over it and the gradient reduced by XLA;
positions replicated), or both (`inference.sharding`). The samples equal a one-device run up to
float round-off (the order of the gradient sums).

Several processes (`jax.distributed.initialize`, one per host): every process runs the same call
with the same key, sizes and a mesh spanning every process's devices. The data are either the
whole training set, the same in every process, or global arrays assembled from each process's own
rows by `inference.shard_data(my_rows, mesh)` (put the "data" axis across the processes, so each
process's devices hold its own rows). Processes giving data of different sizes are refused at
once, in every process, with each process's size. The kept samples are gathered from every
process (chains split over processes included), so every process returns all of them.

Randomness: chain c uses `split(key, n_chains)[c]`; step t draws from `fold_in(chain key, t)`.
`resume=result.state` continues the chains (positions, sampler state, data order, step count), so
two runs resumed one from the other equal one longer run with the same key.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from inference.compile_cache import PROGRAMS, static_key
from inference.deprecation import caller_stacklevel, renamed_arguments
from inference.mcmc_result import MCMCResult
from inference.sgmcmc.latents import latent_space, to_constrained_fn
from inference.sgmcmc.program import ProgramSpec, build_call
from inference.sharding import chain_mesh, place
from inference.train_data import check_process_sizes, to_host

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


def _checked_init(init: Any, n_chains: int, is_init_batched: bool) -> dict[str, jax.Array]:
    """`init` as arrays, checked against `is_init_batched`."""
    if not isinstance(init, Mapping) or not init:
        raise TypeError(f"init must be a non-empty dict {{latent name: array}}, got {init!r}")
    init = {name: jnp.asarray(value) for name, value in init.items()}
    if is_init_batched:
        for name, value in init.items():
            if value.ndim == 0 or value.shape[0] != n_chains:
                raise ValueError(f"init[{name!r}] has shape {value.shape}, but is_init_batched needs a "
                                 f"leading [n_chains={n_chains}] axis")
    return init


def _init_states(sampler, position: Mapping[str, jax.Array], n_chains: int, is_init_batched: bool):
    if not is_init_batched:
        position = {name: jnp.broadcast_to(value, (n_chains, *value.shape))
                    for name, value in position.items()}
    return jax.vmap(sampler.init)(position)


def _sampler_key(sampler) -> tuple:
    """The sampler's type and configuration; a numeric learning rate is left out (it is traced)."""
    items = sorted((name, value) for name, value in vars(sampler).items()
                   if not (name == "learning_rate" and _is_traced_rate(value)))
    return (type(sampler), tuple((name, static_key(value)) for name, value in items))


def _is_traced_rate(value) -> bool:
    return isinstance(value, numbers.Real) or (hasattr(value, "shape") and jnp.shape(value) == ())


def sample(key: jax.Array, sampler: Any, model: Callable, data: Mapping[str, Any] | None = None,
           init: Mapping[str, Any] | None = None, *, batch_size: int | None = None,
           n_epochs: int | None = None, n_warmup_epochs: int = 0, n_samples: int | None = None,
           n_warmup: int = 0, thinning: int = 1,
           n_chains: int = 1, is_init_batched: bool = False, record_fn: Callable[[dict], Any] | None = None,
           progress_bar: bool = True, resume: SGMCMCState | None = None,
           mesh: jax.sharding.Mesh | None = None, **deprecated: Any) -> MCMCResult:
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
        when `is_init_batched` (ignored with `resume`). With a `model_fn`: every latent, on its
        constrained space (inside its support); with a log-joint function: the function's position.
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
      mesh: a `jax.sharding.Mesh` with a "chains" axis, a "data" axis (with data), or both; None:
        one device. `n_chains` must be divisible by the "chains" axis' size, `batch_size` by the
        "data" axis' size. In a multi-process run it spans every process's devices, and `data` is
        the whole set in every process or `inference.shard_data`'s global arrays.

    Returns:
      An `MCMCResult` (`samples, info = result` unpacks): `samples` is `record_fn(position)` at
      every kept step (numpy, leading axes `[n_chains, n_samples]`; with data `n_samples =
      n_epochs * ceil((N // batch_size) / thinning)`), the position on the constrained space with a
      `model_fn`; `info` the sampler's Info at the kept steps (`is_rejected`: steps per kept sample
      rejected for a non-finite gradient, also warned about); `state` an `SGMCMCState` on the
      device (its positions on the unconstrained space).

    Raises:
      ValueError: data arrays of different lengths, bad sizes, an `init` without the chain axis
        `is_init_batched` asks for, sizes of the other mode (epochs without data, steps with it);
        with a `model_fn`, an `init` that misses a latent, names a non-latent, or holds a value
        outside a latent's support or not finite; a mesh without a "chains" or "data" axis, a
        "data" axis without data, `n_chains` or `batch_size` not divisible by its axis' size; in a
        multi-process run, processes whose data have different numbers of rows.
      TypeError: a model function of the wrong arity, a bad `init`/`data`, or `mesh` not a Mesh.

    Example:
      >>> result = sample(key, SGHMC(1e-4), model_fn, {"x": x, "y": y}, init, batch_size=100,
      ...                 n_epochs=50, n_warmup_epochs=10, n_chains=4)
      >>> result.samples["w"].shape            # [4, 50 * ceil(N // 100 / 1), *w.shape]
      >>> more = sample(key, SGHMC(1e-4), model_fn, {"x": x, "y": y}, batch_size=100, n_epochs=50,
      ...               resume=result.state)   # the next 50 epochs of the same chains
      >>> mesh = jax.make_mesh((2, 2), ("chains", "data"))   # 4 devices
      >>> result = sample(key, SGHMC(1e-4), model_fn, {"x": x, "y": y}, init, batch_size=100,
      ...                 n_epochs=50, n_chains=4, mesh=mesh)
      >>> # 2 hosts x 2 devices, each host holding its own half of the rows:
      >>> jax.distributed.initialize()
      >>> devices = np.asarray(jax.devices()).reshape(2, 2).T   # "data" across the hosts
      >>> mesh = jax.sharding.Mesh(devices, ("chains", "data"))
      >>> rows = inference.shard_data({"x": my_x, "y": my_y}, mesh)
      >>> result = sample(key, SGHMC(1e-4), model_fn, rows, init, batch_size=100, n_epochs=50,
      ...                 n_chains=4, mesh=mesh)   # every host gets all 4 chains' samples
    """
    renamed = renamed_arguments(deprecated, {"thin": "thinning", "show_progress": "progress_bar",
                                             "n_burnin_epochs": "n_warmup_epochs"}, "sgmcmc.sample")
    thinning = renamed.get("thinning", thinning)
    progress_bar = renamed.get("progress_bar", progress_bar)
    n_warmup_epochs = renamed.get("n_warmup_epochs", n_warmup_epochs)
    kind = _model_kind(model, data is not None)
    data, n, batch_size, plan = _plan(data, batch_size, n_epochs, n_warmup_epochs, n_samples, n_warmup,
                                      thinning, n_chains)
    n_chains = n_chains if resume is None else _resume_chains(resume, n)
    placement = None if mesh is None else chain_mesh(mesh, n_chains, batch_size if n else None, n)
    if placement is not None and n:
        check_process_sizes(n, "sgmcmc.sample: the data (every process gives all N rows, or "
                               "inference.shard_data's global arrays)")
    space, position = None, None
    if resume is None:
        position = _checked_init(init, n_chains, is_init_batched)
    if kind == "model_fn":   # constrained latents move on the unconstrained space
        space, position = latent_space(model, data, batch_size, position)
    carry = _start(sampler, position, n_chains, is_init_batched, n, resume)
    spec = ProgramSpec(sampler, model, kind, _identity if record_fn is None else record_fn,
                       to_constrained_fn(model, space, batch_size), n, batch_size, 0, 0, False, placement)
    if placement is not None:
        carry = (*place(carry[:2], placement.chains), place(carry[2], placement.replicated))
        data = place(data, placement.data)
    chain_keys = place(jax.random.split(key, n_chains), placement and placement.chains)
    carry, samples, info = _run(spec, carry, chain_keys, data, plan, progress_bar,
                                space.is_identity if space else None)
    _warn_rejected(info, type(sampler).__name__)
    return MCMCResult(samples, info, SGMCMCState(*carry))


def _plan(data, batch_size, n_epochs, n_warmup_epochs, n_samples, n_warmup, thinning, n_chains):
    """`(data, N, batch_size, [(records, thinning, has_records) per call])`, the sizes checked."""
    if data is not None:
        data, n, batch_size = _check_data(data, batch_size)
        if n_samples is not None or n_warmup:
            raise ValueError("with data, sizes are in epochs: give n_epochs and n_warmup_epochs, not "
                             "n_samples / n_warmup")
        _check_ints(n_epochs=(n_epochs, 1), n_warmup_epochs=(n_warmup_epochs, 0), thinning=(thinning, 1),
                    n_chains=(n_chains, 1))
        records_per_call = math.ceil((n // batch_size) / thinning)
        return data, n, batch_size, [(records_per_call, thinning, epoch >= n_warmup_epochs)
                                     for epoch in range(n_warmup_epochs + n_epochs)]
    if n_epochs is not None or n_warmup_epochs or batch_size is not None:
        raise ValueError("without data, sizes are in steps: give n_samples and n_warmup, not epochs or "
                         "batch_size")
    _check_ints(n_samples=(n_samples, 1), n_warmup=(n_warmup, 0), thinning=(thinning, 1),
                n_chains=(n_chains, 1))
    return {}, 0, 0, ([(n_warmup, 1, False)] if n_warmup else []) + [(n_samples, thinning, True)]


def _run(spec: ProgramSpec, carry, chain_keys, data, plan, progress_bar, is_identity):
    """Runs the calls of `plan`; `(carry, samples, info)` with the kept parts on the host."""
    sampler = spec.sampler
    rate = sampler.learning_rate if _is_traced_rate(getattr(sampler, "learning_rate", None)) else None
    rate = None if rate is None else jnp.asarray(rate, jnp.result_type(float))
    n_chains = chain_keys.shape[0]
    kept, infos = [], []
    for records, block, has_records in _progress(plan, progress_bar, type(sampler).__name__,
                                                 bool(spec.n_examples)):
        spec = spec._replace(thinning=block, records_per_call=records, has_records=has_records)
        program_key = ("sgmcmc", _sampler_key(sampler), static_key(spec.model), spec.kind,
                       static_key(spec.record_fn), is_identity, spec.n_examples, spec.batch_size, block,
                       records, has_records, n_chains, spec.placement and spec.placement.mesh,
                       _abstract((carry, data)))
        call = PROGRAMS.get(program_key, functools.partial(build_call, spec))
        carry, outputs = call(carry, chain_keys, data, rate)
        if has_records:   # to the host now: device memory holds one call's records
            kept.append(jax.tree.map(lambda x: np.swapaxes(x, 0, 1), to_host(outputs[0])))
            infos.append(jax.tree.map(lambda x: np.swapaxes(x, 0, 1), to_host(outputs[1])))
    concat = lambda *xs: np.concatenate(xs, axis=1)
    return carry, jax.tree.map(concat, *kept), jax.tree.map(concat, *infos)


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


def _resume_chains(resume: Any, n: int) -> int:
    """The number of chains of `resume`, checked against the data size."""
    if not isinstance(resume, SGMCMCState):
        raise TypeError(f"resume must be an SGMCMCState (result.state), got {type(resume).__name__}")
    if resume.permutation.shape[1] != n:
        raise ValueError(f"resume's data order covers {resume.permutation.shape[1]} examples, the data {n}")
    return int(resume.permutation.shape[0])


def _start(sampler, position, n_chains, is_init_batched, n, resume):
    """The first carry `(states, permutations, step)`."""
    if resume is not None:
        return resume.sampler, resume.permutation, resume.step
    states = _init_states(sampler, position, n_chains, is_init_batched)
    return states, jnp.zeros((n_chains, n), jnp.int32), jnp.zeros((), jnp.int32)


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
