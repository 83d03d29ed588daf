"""Every public callable of `ppl` and `inference` is annotated: each parameter and the return.

"Public" is what a user reaches through the `__all__`s: the names `ppl` and `inference` export, the
modules among them (recursively), and, for a class defined in these packages, its public methods,
properties, `__init__` and `__call__`. Callables defined elsewhere (a re-exported numpyro
distribution) are their authors' business. mypy (tests/test_types.py) checks that the annotations
agree with the code; this test checks that they are there, which mypy does not (an unannotated
function is simply not checked). It only imports and introspects: well under a second.
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Callable, Iterator

PACKAGES = ("ppl", "inference")

# TEMPORARY: `inference.hmc` and `inference.sgmcmc` were being annotated on other branches while this
# test was written. The coordinator empties this allow-list once those branches are merged; it may
# hold names of those two subpackages only.
TEMPORARY_UNANNOTATED_IN_HMC_AND_SGMCMC: frozenset[str] = frozenset()
_TEMPORARY_PREFIXES = ("inference.hmc.", "inference.sgmcmc.")


def _public_modules() -> list[types.ModuleType]:
    """`ppl`, `inference` and every module of these packages that an `__all__` exports, recursively."""
    found: dict[str, types.ModuleType] = {}
    queue = [importlib.import_module(name) for name in PACKAGES]
    while queue:
        module = queue.pop(0)
        if module.__name__ not in found:
            found[module.__name__] = module
            queue += [value for value in (getattr(module, name) for name in module.__all__)
                      if isinstance(value, types.ModuleType) and value.__name__.startswith(PACKAGES)]
    return list(found.values())


def _ours(value: object) -> bool:
    return str(getattr(value, "__module__", "") or "").startswith(PACKAGES)


def _class_members(cls: type) -> Iterator[tuple[str, Callable]]:
    """The public methods (plain, class, static), property getters, `__init__` and `__call__` that
    `cls` itself defines (inherited ones are checked on the class that defines them)."""
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        elif isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member) and not getattr(member, "__module__", "").startswith("collections"):
            yield name, member


def _public_callables() -> dict[str, Callable]:
    """`{qualified name: function}`, one entry per distinct function, named where it is defined."""
    found: dict[int, tuple[str, Callable]] = {}
    for module in _public_modules():
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, types.ModuleType) or not _ours(value):
                continue
            if isinstance(value, type):
                owners = [c for c in value.__mro__ if _ours(c)]
                for owner in owners:
                    for member_name, member in _class_members(owner):
                        qualname = f"{owner.__module__}.{owner.__qualname__}.{member_name}"
                        found.setdefault(id(member), (qualname, member))
            elif callable(value):
                found.setdefault(id(value), (f"{value.__module__}.{getattr(value, '__qualname__', name)}",
                                             value))
    return dict(found.values())


def _unannotated(function: Callable) -> list[str]:
    """The parameters (and `return`) of `function` without an annotation."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or a C function: nothing to annotate
        return []
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].name in ("self", "cls") and "." in function.__qualname__:
        parameters = parameters[1:]
    missing = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    # As in PEP 484 and mypy: an `__init__` with an annotated parameter returns None implicitly.
    implied = function.__name__ == "__init__" and len(missing) < len(parameters)
    if signature.return_annotation is inspect.Signature.empty and not implied:
        missing.append("return")
    return missing


def test_every_public_callable_is_annotated():
    callables = _public_callables()
    assert len(callables) > 200, f"found only {len(callables)} public callables; the walk is broken"
    unannotated = {name: missing for name, function in sorted(callables.items())
                   if (missing := _unannotated(function))}
    offenders = {name: missing for name, missing in unannotated.items()
                 if name not in TEMPORARY_UNANNOTATED_IN_HMC_AND_SGMCMC}
    remaining = sorted(set(unannotated) & TEMPORARY_UNANNOTATED_IN_HMC_AND_SGMCMC)
    report = "\n".join(f"  {name}: {', '.join(missing)}" for name, missing in offenders.items())
    assert not offenders, (f"{len(offenders)} public callables lack annotations (parameter names, or "
                           f"'return'):\n{report}\n(still on the temporary allow-list: {remaining})")


def test_the_temporary_allow_list_names_hmc_and_sgmcmc_only():
    allowed = TEMPORARY_UNANNOTATED_IN_HMC_AND_SGMCMC
    outside = sorted(name for name in allowed if not name.startswith(_TEMPORARY_PREFIXES))
    assert not outside, f"the temporary allow-list may hold inference.hmc/sgmcmc names only: {outside}"


def test_the_checker_sees_a_missing_annotation():
    def typed(x: int, *rest: int, flag: bool = False) -> int:
        return x

    def untyped(x, y: int = 0):
        return x

    assert _unannotated(typed) == []
    assert _unannotated(untyped) == ["x", "return"]
