"""A progress bar for jitted, vmapped loops: host callbacks from inside `lax.scan`.

`progress_callback(i, every, bar)` is called in the body of a scan over time (outside the vmap
over chains, so it fires once per step for all chains); every `every` steps it sends the step
number to the host with `jax.debug.callback`. With `bar=True` the callback goes to whichever
`ProgressBar` is active (`with ProgressBar(...):`) when the program runs, so one compiled program
serves every call: the bar is not part of what is compiled.
"""

from __future__ import annotations

from typing import Any

import jax
from jax import lax

__all__ = ["ProgressBar", "progress_callback"]

_ACTIVE: list = [None]   # the active bar (callbacks run on XLA's host threads, so not thread-local)


class ProgressBar:
    """A tqdm bar on the host (a no-op when tqdm is missing or `is_enabled` is False).

    Use it as a context manager to make it the target of `progress_callback(..., bar=True)`.

    Args:
      total: the number of steps of the whole run.
      description: the bar's label.
      is_enabled: whether to show anything.
    """

    def __init__(self, total: int, description: str = "HMC", is_enabled: bool = True):
        self.total = int(total)
        self._bar = None
        if is_enabled and total > 0:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is an optional dependency
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=description)

    @property
    def is_enabled(self) -> bool:
        """Whether a progress bar is shown."""
        return self._bar is not None

    def set(self, step: Any) -> None:
        """Moves the bar to `step` (idempotent, so duplicate callbacks from devices are harmless)."""
        if self._bar is not None:
            step = min(int(step), self.total)
            if step > self._bar.n:
                self._bar.update(step - self._bar.n)

    def close(self) -> None:
        """Closes the progress bar (a no-op when disabled)."""
        if self._bar is not None:
            self.set(self.total)
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        self._previous = _ACTIVE[0]
        _ACTIVE[0] = self
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE[0] = self._previous
        self.close()


def _report(step) -> None:
    bar = _ACTIVE[0]
    if bar is not None:
        bar.set(step)


def progress_callback(step: jax.Array, every: int, bar: ProgressBar | bool | None) -> None:
    """Inside a scan body: report `step + 1` when `(step + 1) % every == 0`.

    Args:
      step: the scan's step counter, an unbatched int array of shape `[]`.
      every: report interval in steps (static).
      bar: a `ProgressBar` (baked into the program), True (report to the active `ProgressBar` when
        the program runs), or None/False (nothing is traced).
    """
    if bar is None or bar is False or (isinstance(bar, ProgressBar) and not bar.is_enabled):
        return
    target = bar.set if isinstance(bar, ProgressBar) else _report
    lax.cond((step + 1) % every == 0,
             lambda s: jax.debug.callback(target, s + 1), lambda s: None, step)
