"""What every MCMC driver returns: `MCMCResult(samples, info, state)`, and the HMC family's `MCMCState`.

`samples, info = result` unpacks as the drivers always returned; `result.state` continues the run
(`.sample(..., resume=result.state)`) without warmup. A state is a plain pytree of arrays (no PRNG
key objects), so it can be saved with `np.savez` and loaded back:

  >>> leaves, treedef = jax.tree.flatten(result.state)
  >>> np.savez("state.npz", *leaves)
  >>> with np.load("state.npz") as f:
  ...     state = jax.tree.unflatten(treedef, [f[f"arr_{i}"] for i in range(len(leaves))])
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax

__all__ = ["MCMCResult", "MCMCState"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MCMCResult:
    """Samples, per-draw diagnostics, and the state that continues the run.

    Unpacks into two values (`samples, info = result`), as the drivers returned before `state`
    existed; `result.state` is the third field.

    Attributes:
      samples: the kept draws, leaves `[n_chains, n_samples, ...]`.
      info: per-draw diagnostics (the driver's Info type), leaves `[n_chains, n_samples]` or
        per-chain `[n_chains, ...]`.
      state: what `resume=` needs: an `MCMCState` for HMC, NUTS and ChEES; an
        `inference.sgmcmc.SGMCMCState` for the SG-MCMC driver.
    """

    samples: Any
    info: Any
    state: Any

    def __iter__(self):
        return iter((self.samples, self.info))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index):
        return (self.samples, self.info)[index]


class MCMCState(NamedTuple):
    """The end of an HMC-family run, enough to continue it exactly (`resume=`).

    Attributes:
      position: the chains' last positions on the unconstrained space, leaves `[n_chains, ...]`.
      log_joint: log p at `position`, `[n_chains]` (cached, so a resumed run repeats no work).
      log_joint_grad: its gradient, like `position`.
      step_size: `[n_chains]`, the adapted step size (position units).
      inverse_mass_matrix: `[n_chains, d]` (diagonal) or `[n_chains, d, d]` (dense), over the d
        scalars of the raveled position.
      iteration: `[]` int32, sampling transitions done since warmup ended: the position in the
        key stream. Draw t of a run with key k uses `fold_in(chain key, t)`, so continuing with the
        same key gives the draws one longer run would have given.
      parameters: sampler-specific tuned values, `{}` for HMC and NUTS, `{"trajectory_length":
        [n_chains]}` for ChEES.
    """

    position: Any
    log_joint: jax.Array
    log_joint_grad: Any
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    iteration: jax.Array
    parameters: dict
