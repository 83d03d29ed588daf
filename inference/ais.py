"""Annealed importance sampling (AIS) of the log marginal likelihood, with HMC transitions.

Starting from the proposal q(z), each chain moves through the intermediate densities
f_t(z) = q(z)^{1 - beta_t} p(x, z)^{beta_t}, 0 = beta_0 < ... < beta_T = 1, with one HMC transition
leaving f_t invariant at each temperature, and accumulates the log importance weight

.. math::
  \\log w = \\sum_{t=1}^T (\\beta_t - \\beta_{t-1}) [\\log p(x, z_{t-1}) - \\log q(z_{t-1})],

an unbiased estimate of p(x) in exp space: log p(x) ~ log mean_k exp(log w_k). Latents are moved
to the model's unconstrained space (the same Jacobian enters p and q). Everything runs as one
jitted `lax.scan` over temperatures with chains by `jax.vmap`.

References:
  Neal, `Annealed Importance Sampling <https://arxiv.org/abs/physics/9803008>`_, Statistics and
  Computing 2001;
  Wu, Burda, Salakhutdinov and Grosse, `On the Quantitative Analysis of Decoder-Based Generative
  Models <https://arxiv.org/abs/1611.04273>`_, ICLR 2017 (AIS with HMC; sigmoidal schedule).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from inference.compile_cache import PROGRAMS
from inference.hmc import model as dsl
from inference.hmc.kernel import HMCState, build_kernel
from inference.log_joint import latent_specs, values_log_joint_fn
from ppl import MetaBayesianNet

if TYPE_CHECKING:
    from inference.hmc import HMC

__all__ = ["AIS", "AISResult", "temperature_schedule"]


class AISResult(NamedTuple):
    """The output of `AIS.run`.

    Attributes:
      log_marginal: log of the mean importance weight, shape `[]` (nats): the estimate of log p(x).
      log_weights: `[n_chains]`, each chain's log importance weight.
      stderr: `[]`, delta-method standard error of `log_marginal`: sd(w) / (sqrt(K) mean(w)).
      acceptance_rate: `[n_chains]`, mean HMC acceptance over the temperatures.
    """

    log_marginal: jax.Array
    log_weights: jax.Array
    stderr: jax.Array
    acceptance_rate: jax.Array


def temperature_schedule(n_temperatures: int, schedule: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
    """Inverse temperatures `[n_temperatures + 1]` from 0 to 1.

    Args:
      n_temperatures: T, the number of transitions.
      schedule: "linear", or "sigmoid" (sigmoid of a linear grid on [-delta, delta], rescaled to [0, 1],
        denser at both ends; Grosse, Maddison and Salakhutdinov 2013).

    Raises:
      ValueError: T < 1 or an unknown schedule.
    """
    if n_temperatures < 1:
        raise ValueError(f"n_temperatures must be >= 1, got {n_temperatures}")
    if schedule == "linear":
        return np.linspace(0.0, 1.0, n_temperatures + 1)
    if schedule == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-np.linspace(-delta, delta, n_temperatures + 1)))
        return (s - s[0]) / (s[-1] - s[0])
    raise ValueError(f"schedule must be 'linear' or 'sigmoid', got {schedule!r}")


class AIS:
    """Annealed importance sampling from `proposal_meta_bn` to `meta_bn` given `observed` (ZhuSuan's AIS).

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet`; its stochastic nodes not in `observed` are latents.
      proposal_meta_bn: a `ppl.MetaBayesianNet` with exactly those latents (same names and shapes),
        all sampled (e.g. the prior, or a fitted variational posterior).
      hmc: an `inference.hmc.HMC`; its `step_size` and `n_leapfrogs` (fixed, no adaptation) make the
        transitions.
      observed: `{name: value}` for the model's observed nodes.
      n_temperatures: number of intermediate distributions T (T HMC transitions per chain).
      schedule: "sigmoid" (default) or "linear"; see `temperature_schedule`.

    Raises:
      ValueError: the proposal's latents differ from the model's (names or shapes), or `hmc` has no
        finite positive `step_size`. `run` also raises when a latent's support differs between the
        proposal and the model, and warns (`RuntimeWarning`) explaining a non-finite estimate.

    Example:
      >>> ais = AIS(model, prior, HMC(step_size=0.1, n_leapfrogs=5), {"x": x}, n_temperatures=500)
      >>> result = ais.run(key, n_chains=32)
      >>> result.log_marginal, result.stderr
    """

    def __init__(self, meta_bn: MetaBayesianNet, proposal_meta_bn: MetaBayesianNet, hmc: HMC,
                 observed: dict[str, Any], n_temperatures: int = 1000, schedule: str = "sigmoid") -> None:
        step_size = getattr(hmc, "step_size", None)
        is_number = isinstance(step_size, (int, float, np.floating))
        if not (is_number and np.isfinite(float(step_size)) and float(step_size) > 0):  # type: ignore[arg-type]
            raise ValueError(f"AIS: hmc must be an inference.HMC with a finite positive step_size, got "
                             f"{type(hmc).__name__} with step_size={step_size!r}")
        self.meta_bn, self.proposal_meta_bn, self.hmc = meta_bn, proposal_meta_bn, hmc
        self.observed = dict(observed)
        self.betas = temperature_schedule(n_temperatures, schedule)
        self.n_temperatures = int(n_temperatures)

    def run(self, key: jax.Array, n_chains: int) -> AISResult:
        """Runs `n_chains` independent AIS chains and combines their weights.

        The run is one compiled program, reused by later calls with the same model builders, static
        arguments, shapes, HMC configuration, `n_temperatures` and `n_chains` (observations, data
        arguments, the step size and the schedule's values are traced).

        Args:
          key: PRNG key.
          n_chains: K, the number of annealing chains (importance samples).

        Returns:
          An `AISResult`.

        Raises:
          ValueError: the proposal's latents differ from the model's, or `n_chains < 1`.
        """
        if isinstance(n_chains, bool) or not isinstance(n_chains, (int, np.integer)) or n_chains < 1:
            raise ValueError(f"n_chains must be a positive int, got {n_chains!r}")
        key_trace, key_init, key_run = jax.random.split(key, 3)
        arrays, static = dsl.split_model(self.meta_bn, self.observed)
        proposal_arrays, proposal_static = dsl.split_model(self.proposal_meta_bn, {})
        summary = dsl.latent_summary(self.meta_bn, self.observed, static, key_trace)
        shapes = {name: s.shape for name, s in summary.items()}
        proposal_summary = dsl.latent_summary(self.proposal_meta_bn, {}, proposal_static, key_trace)
        proposal_shapes = {name: s.shape for name, s in proposal_summary.items()}
        if shapes != proposal_shapes:
            raise ValueError(f"the proposal's latents {proposal_shapes} must match the model's {shapes}")
        _check_supports(self.meta_bn, self.observed, self.proposal_meta_bn)
        program_key = ("ais", static.key, proposal_static.key, self.n_temperatures, self.hmc.n_leapfrogs,
                       int(n_chains))
        build = lambda: self._program(static, proposal_static, int(n_chains), summary)
        program = PROGRAMS.get(program_key, build)
        dtype = jnp.result_type(*[s.dtype for s in summary.values()], float)
        result = program(key_init, key_run, arrays, proposal_arrays, jnp.asarray(self.betas, dtype),
                         jnp.asarray(self.hmc.step_size, dtype))
        _explain_non_finite(result)
        return result

    def _program(self, static, proposal_static, n_chains, summary):
        n_leapfrogs = self.hmc.n_leapfrogs

        def program(key_init, key_run, arrays, proposal_arrays, betas, step_size):
            meta_bn, observed = dsl.rebuild_model(static, arrays)
            proposal_bn, _ = dsl.rebuild_model(proposal_static, proposal_arrays)
            model = dsl.log_joint_model(meta_bn, observed, summary)
            proposal_log_joint = values_log_joint_fn(proposal_bn, {})

            def log_q(u):   # q on the model's unconstrained space: the model's transforms and Jacobian
                values, log_det = model.constrain(u)
                return proposal_log_joint(values) + log_det

            def initial_position(k):
                bn = proposal_bn.observe(k)
                return model.to_unconstrained({name: bn[name].value for name in model.specs})

            positions = jax.vmap(initial_position)(jax.random.split(key_init, n_chains))
            keys = jax.random.split(key_run, n_chains)
            chain = lambda k, position: _chain(k, position, model.log_joint_fn, log_q, betas, step_size,
                                               n_leapfrogs)
            log_w, acceptance = jax.vmap(chain)(keys, positions)
            log_marginal = jax.nn.logsumexp(log_w) - jnp.log(n_chains)
            w = jnp.exp(log_w - jnp.max(log_w))
            stderr = jnp.std(w) / (jnp.sqrt(n_chains) * jnp.mean(w))
            return AISResult(log_marginal, log_w, stderr, acceptance)

        return jax.jit(program)


def _check_supports(meta_bn, observed, proposal_meta_bn) -> None:
    """Raises when a latent's support differs between the model and the proposal (where both are static)."""
    model_specs, proposal_specs = latent_specs(meta_bn, observed), latent_specs(proposal_meta_bn, {})
    for name, spec in model_specs.items():
        theirs = proposal_specs[name].support
        if spec.support is None or theirs is None or spec.support == theirs:
            continue
        raise ValueError(f"latent {name!r}: the proposal's support {theirs} differs from the model's "
                         f"{spec.support}; proposal draws outside the model's support have zero target "
                         "density and make the AIS estimate non-finite. Use a proposal on the same support "
                         "(e.g. a LogNormal or the prior for a positive latent).")


def _explain_non_finite(result: AISResult) -> None:
    """Warns, with the count and a likely cause, when the estimate is not finite (under a transformation
    such as `jax.vmap` or `jax.jit` the values are abstract: nothing to check)."""
    if isinstance(result.log_weights, jax.core.Tracer):
        return
    log_weights = np.asarray(result.log_weights)
    bad = ~np.isfinite(log_weights)
    if not bad.any() and np.isfinite(np.asarray(result.log_marginal)):
        return
    estimate = float(np.asarray(result.log_marginal))
    warnings.warn(f"AIS: the log-marginal estimate is {estimate}: {int(bad.sum())} "
                  f"of {bad.size} chains have non-finite log weights (a NaN or -inf log-density along the "
                  "annealing path: a proposal putting mass where the model has none, a step size so large "
                  "that HMC leaves the support, or a model overflowing). Check result.acceptance_rate, use a "
                  "smaller step size or a proposal closer to the posterior.", RuntimeWarning, stacklevel=3)


def _chain(key, position, log_p, log_q, betas, step_size, n_leapfrogs):
    """One annealing chain: `(key, position) -> (log weight [], mean acceptance [])`."""
    kernel = build_kernel()
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(position))
    betas = betas.astype(dtype)
    p_and_grad, q_and_grad = jax.value_and_grad(log_p), jax.value_and_grad(log_q)
    inverse_mass = jnp.ones_like(ravel_pytree(position)[0])

    def step(carry, xs):
        position, log_w = carry
        t, beta_prev, beta = xs
        (lp, gp), (lq, gq) = p_and_grad(position), q_and_grad(position)
        log_w = log_w + (beta - beta_prev) * (lp - lq)
        target = lambda u: (1.0 - beta) * log_q(u) + beta * log_p(u)
        grad = jax.tree_util.tree_map(lambda a, b: (1.0 - beta) * b + beta * a, gp, gq)
        state = HMCState(position, (1.0 - beta) * lq + beta * lp, grad)
        state, info = kernel(jax.random.fold_in(key, t), state, target, step_size.astype(dtype), inverse_mass,
                             jnp.asarray(n_leapfrogs))
        return (state.position, log_w), info.acceptance_rate

    xs = (jnp.arange(betas.shape[0] - 1), betas[:-1], betas[1:])
    (_, log_w), acceptance = lax.scan(step, (position, jnp.zeros((), dtype)), xs)
    return log_w, jnp.mean(acceptance)
