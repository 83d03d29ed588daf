"""A progress bar for jitted, vmapped loops: host callbacks from inside `lax.scan`.

`progress_callback(i, every, bar)` is called in the body of a scan over time (outside the vmap
over chains, so it fires once per step for all chains); every `every` steps it sends the step
number to the host with `jax.debug.callback`. With `bar=True` the callback goes to whichever
`ProgressBar` is active (`with ProgressBar(...):`) when the program runs, so one compiled program
serves every call: the bar is not part of what is compiled.

`report_running(bar_id, step, sums, every)` does the same for a training loop: every `every` steps
it sends the running means of the cost and metrics to the bar registered under `bar_id` (an
array, so one compiled program serves every bar), which shows them as the bar's postfix.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import jax
from jax import lax

__all__ = ["ProgressBar", "progress_callback", "register_bar", "report_running", "unregister_bar"]

_ACTIVE: list = [None]   # the active bar (callbacks run on XLA's host threads, so not thread-local)


class ProgressBar:
    """A tqdm bar on the host (a no-op when tqdm is missing or `is_enabled` is False).

    Use it as a context manager to make it the target of `progress_callback(..., bar=True)`.

    Args:
      total: the number of steps of the whole run.
      description: the bar's label.
      is_enabled: whether to show anything.
    """

    def __init__(self, total: int, description: str = "HMC", is_enabled: bool = True, initial: int = 0,
                 unit: str = "it"):
        self.total = int(total)
        self._bar = None
        if is_enabled and total > 0:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is an optional dependency
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=description, initial=int(initial), unit=unit)

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

    def set_postfix(self, values: dict) -> None:
        """Shows `{name: number}` after the bar (4 significant digits)."""
        if self._bar is not None:
            self._bar.set_postfix({name: f"{float(value):.4g}" for name, value in values.items()},
                                  refresh=False)

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


_BARS: dict[int, ProgressBar] = {}
_BAR_IDS = itertools.count(1)
_BARS_LOCK = threading.Lock()


def register_bar(bar: ProgressBar) -> int:
    """Makes `bar` reachable from compiled code by the returned id (0 for a disabled bar)."""
    if not bar.is_enabled:
        return 0
    with _BARS_LOCK:
        bar_id = next(_BAR_IDS)
        _BARS[bar_id] = bar
    return bar_id


def unregister_bar(bar_id: int) -> None:
    """Forgets the bar registered under `bar_id` (callbacks for it are then ignored)."""
    with _BARS_LOCK:
        _BARS.pop(int(bar_id), None)


def _show_running(bar_id, step, count, totals) -> None:
    bar = _BARS.get(int(bar_id))
    if bar is not None:
        bar.set(step)
        if int(count) > 0:
            bar.set_postfix({name: total / count for name, total in totals.items()})


def report_running(bar_id: jax.Array, step: jax.Array, sums: tuple, every: int) -> None:
    """Inside a training scan: every `every` steps, move bar `bar_id` to `step + 1` and show the means.

    Args:
      bar_id: int array `[]` from `register_bar` (0 or an unknown id: nothing is shown).
      step: the global step counter, int array `[]`.
      sums: `(count, {name: total})`, the number of applied steps and the sums of each value over them.
      every: report interval in steps (static, positive).
    """
    count, totals = sums
    lax.cond((step + 1) % every == 0,
             lambda: jax.debug.callback(_show_running, bar_id, step + 1, count, totals),
             lambda: None)
