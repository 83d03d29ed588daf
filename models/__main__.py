"""`python -m models NAME [flags]`: run one model of the zoo; `python -m models` lists them.

The commands are an explicit table (`COMMANDS`): listing them imports no model, and running one
imports only its module, which must define `add_arguments(parser)` and `main(args)`. Before the
command runs, its counts are validated by the parser, and `--data-dir` and `--out` are checked
(`models.cli.prepare_output`: an existing non-empty `--out` is refused without `--overwrite`), so a
bad flag never costs a training run.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "main"]

# command -> (module that defines `add_arguments` and `main`, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "blr": ("models.blr", "Bayesian logistic regression with NUTS, HMC or ChEES (breast cancer)"),
    "bnn": ("models.bnn", "Bayesian neural network regression on UCI data: SGVB or SG-MCMC"),
    "gaussian": ("models.gaussian", "The posterior of a Gaussian's mean and precision by HMC"),
    "gp": ("models.gp.cli", "Gaussian processes: SVGP on UCI regression, exact GP on Mauna Loa CO2"),
    "iwae": ("models.vae.iwae", "Importance weighted autoencoder on binarized MNIST (IWAE or DReG)"),
    "lda": ("models.topics.cli", "Topic models: LDA by SVI, or the logistic-normal topic model"),
    "pmf": ("models.pmf", "Bayesian probabilistic matrix factorisation by HMC (MovieLens)"),
    "sbn": ("models.vae.sbn", "Sigmoid belief network on binarized MNIST: VIMCO, NVIL or RWS"),
    "ssl_vae": ("models.vae.ssl", "Semi-supervised VAE (M2) on MNIST with 100 labels, labels enumerated"),
    "vae": ("models.vae.cli", "Variational autoencoder on MNIST (Gaussian, discrete or flow latents)"),
}


def _parser(command: str | None):
    """The top-level parser and `command`'s sub-parser and module (None, None without a command).

    Only `command`'s module is imported and its flags added.
    """
    parser = argparse.ArgumentParser(prog="python -m models", description="Run a model of the zoo.")
    subparsers = parser.add_subparsers(dest="model", metavar="MODEL")
    chosen, module = None, None
    for name, (module_name, description) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=description, description=description, allow_abbrev=False)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_main=module.main)
            chosen = sub
    return parser, chosen, module


def _given(sub: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the optional flags written in `argv` (abbreviations are off, so exact matches)."""
    written = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return {action.dest for action in sub._actions if written & set(action.option_strings)}


def main(argv=None) -> int:
    """Parses `argv`, runs the chosen model; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser, sub, module = _parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.print_help()
        return 2
    from models import cli  # imported here: listing the commands imports nothing

    if hasattr(module, "check_flags"):
        module.check_flags(args, _given(sub, argv))  # flags the chosen method does not use
    cli.data_dir_from(args)   # a missing --data-dir fails now, before any computation
    cli.prepare_output(args)  # so does an unusable or already used --out
    return args._main(args) or 0


def _run_from_shell() -> int:
    """`main()`, with the errors a user can fix printed as one line rather than a traceback."""
    try:
        return main()
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as error:
        print(f"python -m models: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_run_from_shell())
