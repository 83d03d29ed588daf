"""`python -m models NAME [flags]`: run one model of the zoo; `python -m models` lists them.

The commands are an explicit table (`COMMANDS`): listing them imports no model, and running one
imports only its module, which must define `add_arguments(parser)` and `main(args)`.
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
    "vae": ("models.vae.model", "Variational autoencoder on MNIST (Gaussian, discrete or flow latents)"),
}


def _parser(command: str | None) -> argparse.ArgumentParser:
    """The top-level parser; only `command`'s module (if any) is imported and its flags added."""
    parser = argparse.ArgumentParser(prog="python -m models", description="Run a model of the zoo.")
    subparsers = parser.add_subparsers(dest="model", metavar="MODEL")
    for name, (module_name, description) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=description, description=description)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_main=module.main)
    return parser


def main(argv=None) -> int:
    """Parses `argv`, runs the chosen model; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = _parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.print_help()
        return 2
    return args._main(args) or 0


if __name__ == "__main__":
    sys.exit(main())
