"""`python -m models NAME [flags]`: run one model of the zoo; `python -m models` lists them."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import models

_NOT_MODELS = {"cli"}


def available_models() -> dict[str, str]:
    """Model name -> one-line description, for every module with `add_arguments` and `main`."""
    found = {}
    for info in pkgutil.iter_modules(models.__path__):
        if info.name.startswith("_") or info.name in _NOT_MODELS or info.ispkg:
            continue
        module = importlib.import_module(f"models.{info.name}")
        if hasattr(module, "add_arguments") and hasattr(module, "main"):
            found[info.name] = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    return found


def main(argv=None) -> int:
    """Parses `argv`, runs the chosen model; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m models", description="Run a model of the zoo.")
    subparsers = parser.add_subparsers(dest="model", metavar="MODEL")
    for name, description in sorted(available_models().items()):
        module = importlib.import_module(f"models.{name}")
        sub = subparsers.add_parser(name, help=description, description=description)
        module.add_arguments(sub)
        sub.set_defaults(_main=module.main)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.print_help()
        return 2
    return args._main(args) or 0


if __name__ == "__main__":
    sys.exit(main())
