"""Writes the API reference pages (`docs/api/*.rst`) from `ppl.__all__` and `inference.__all__`.

Every object is documented once, under its shortest public path: a name in a package's `__all__`
on the package's page (`ppl.BayesianNet`), a name only a submodule exports on that submodule's page
(`inference.hmc.nuts_kernel`); a submodule's page lists the names it shares with the package and
links to them. `PACKAGES` and each module's `__all__` are the only input, so the reference cannot
drift from the code; `tests/docs/test_site.py` checks the built index against `__all__`.
"""

from __future__ import annotations

import importlib
import inspect
import types
from pathlib import Path

__all__ = ["PACKAGES", "documented_names", "write"]

PACKAGES = ("ppl", "inference")


def _directive(qualname: str, obj: object) -> str:
    if inspect.isclass(obj):
        return f".. autoclass:: {qualname}\n   :members:\n"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or (callable(obj) and hasattr(obj, "__wrapped__")):
        return f".. autofunction:: {qualname}\n"
    return f".. autodata:: {qualname}\n   :no-value:\n"


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    return list(names)


def documented_names() -> dict[str, list[str]]:
    """Page module name -> the qualified names documented on it, in order (modules included)."""
    seen: dict[int, str] = {}
    pages: dict[str, list[str]] = {}
    queue = list(PACKAGES)
    while queue:
        module_name = queue.pop(0)
        module = importlib.import_module(module_name)
        entries = []
        for name in _public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith(PACKAGES) and obj.__name__ not in (*pages, *queue):
                    queue.append(obj.__name__)
                continue
            if id(obj) in seen and not isinstance(obj, (str, int, float, tuple, dict)):
                continue
            seen[id(obj)] = f"{module_name}.{name}"
            entries.append(f"{module_name}.{name}")
        pages[module_name] = entries
    return pages


def _page(module_name: str, entries: list[str], pages: dict[str, list[str]]) -> str:
    module = importlib.import_module(module_name)
    title = f"``{module_name}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module_name}", "   :no-members:", ""]
    submodules = [f"{module_name}.{n}" for n in _public_names(module)
                  if isinstance(getattr(module, n), types.ModuleType) and f"{module_name}.{n}" in pages]
    shared = [n for n in _public_names(module) if f"{module_name}.{n}" not in entries
              and not isinstance(getattr(module, n), types.ModuleType)]
    if entries:
        short = [f"   {e.rsplit('.', 1)[1]}" for e in entries]
        lines += [".. autosummary::", "   :nosignatures:", "", *short, ""]
    if submodules:
        lines += ["Submodules: " + ", ".join(f":mod:`{s}`" for s in submodules) + ".", ""]
    if shared:
        owners = {id(getattr(importlib.import_module(p), q.rsplit(".", 1)[1])): q
                  for p, qs in pages.items() for q in qs}
        refs = [f":obj:`{n} <{owners[id(getattr(module, n))]}>`" for n in shared
                if id(getattr(module, n)) in owners]
        if refs:
            lines += ["Also exported here (re-exports and aliases, each documented at its target): "
                      + ", ".join(refs) + ".", ""]
    for qualname in entries:
        lines += [_directive(qualname, getattr(module, qualname.rsplit(".", 1)[1]))]
    return "\n".join(lines)


def write(target: Path) -> None:
    """Writes `target/index.rst` and one page per public module, replacing what was there."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.rst"):
        old.unlink()
    pages = documented_names()
    for module_name, entries in pages.items():
        (target / f"{module_name}.rst").write_text(_page(module_name, entries, pages))
    toc = "\n".join(f"   {m}" for m in pages)
    (target / "index.rst").write_text(
        "API reference\n=============\n\n"
        "Generated from the docstrings of every name in ``ppl.__all__`` and ``inference.__all__`` and\n"
        "of their public submodules. Each object is documented once, under its shortest public path.\n\n"
        f".. toctree::\n   :maxdepth: 1\n   :titlesonly:\n\n{toc}\n")
