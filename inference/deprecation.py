"""Renamed arguments: old names keep working for one release, with a `DeprecationWarning` naming the
new one."""

from __future__ import annotations

import os
import sys
import types
import warnings

__all__ = ["caller_stacklevel", "renamed_arguments"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def caller_stacklevel() -> int:
    """The `stacklevel` that points a warning at the first frame outside the `inference` package
    (the user's call)."""
    level = 2
    frame: types.FrameType | None = sys._getframe(2)   # 1: the function that warns; 2: its caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    return level


def renamed_arguments(kwargs: dict, renames: dict, where: str) -> dict:
    """Maps deprecated keyword names to new ones, warning once per use.

    Args:
      kwargs: the extra keyword arguments a function received.
      renames: `{old name: new name}`.
      where: the function's name for messages.

    Returns:
      `{new name: value}` for the old names given.

    Raises:
      TypeError: an unknown keyword argument.

    Example:
      >>> def sample(..., thinning=1, **deprecated):
      ...     renamed = renamed_arguments(deprecated, {"thin": "thinning"}, "sample")
      ...     thinning = renamed.get("thinning", thinning)
    """
    out = {}
    for name, value in kwargs.items():
        if name not in renames:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
        warnings.warn(f"{where}: {name!r} is deprecated and will be removed in the next release; use "
                      f"{renames[name]!r}", DeprecationWarning, stacklevel=caller_stacklevel())
        out[renames[name]] = value
    return out
