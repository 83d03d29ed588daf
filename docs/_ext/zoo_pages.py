"""Writes the model zoo pages (`docs/zoo/`) from the command line `python -m models` itself.

The list of models and each model's flags come from running the CLI's own `--help` in-process
(`models.__main__.main([...])`), so the pages follow every change to the parsers and to how the
models are laid out. `RESULTS` holds the numbers recorded in `benchmarks/README.md` (where each one
is measured, with machine and settings); a model without an entry gets a page without numbers.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

__all__ = ["RESULTS", "command_help", "model_names", "write"]

SEE = "Recorded in `benchmarks/README.md`"

RESULTS = {
    "vae": f"""After 50 epochs on full MNIST, test log-likelihood **-89.29 +- 0.24** nats (importance
sampling, 1000 samples), the same as the hand-written JAX VAE's -89.30 with the same seed; one
training step runs at 0.99-1.05x the hand-written step's time. {SEE}, section "VAE".""",
    "iwae": f"""One pass over binarized MNIST: VAE (k = 1) -147.31, IWAE-5 -138.04, IWAE-50 -130.51 nats
test log-likelihood; the IWAE-50 training step at 0.99x hand-written JAX. {SEE}, section
"Variational inference".""",
    "sbn": f"""Gradient variance on the sigmoid belief net, relative to REINFORCE without a baseline:
moving-average baseline 0.025, learned (NVIL) baseline 0.0063, VIMCO 0.0031; the VIMCO-10 step at
0.99x hand-written JAX. {SEE}, section "Variational inference".""",
    "blr": f"""2.5-2.7x the transitions per second of BlackJAX's and NumPyro's HMC kernels at 1 chain and
1.3-1.7x at 32 chains; 1.72x NumPyro NUTS's ESS per second, both compiled. `inference.NUTS` on the same
posterior: 1.11x (1 chain) and 1.22x (16 chains) the ESS per second of NumPyro's NUTS compiled in
the same harness. {SEE}, sections "HMC" and "NUTS and ChEES".""",
    "bnn": f"""SGHMC on all published UCI splits matches or beats MC-dropout's RMSE on 7 of 9 data sets
(Boston 2.95 vs 2.97, yacht 0.65 vs 1.11); the SGLD and SGHMC steps at 0.96x and 0.98x hand-written
JAX. {SEE}, section "SG-MCMC".""",
    "gp": f"""Sparse variational GP with 100 inducing points: Boston RMSE 2.87 / NLL 2.48 (20 splits),
protein 4.43 / 2.91 (5 splits), against ZhuSuan's published 2.90 / 2.52 and 4.49 / 2.93. The exact
GP on Boston split 0: RMSE 2.313 (scikit-learn 2.327). {SEE}, section "Gaussian processes".""",
    "lda": f"""Held-out document-completion perplexity on the 395 Reuters stories: ZhuSuan's
logistic-normal topic model (HMC inside Monte Carlo EM) 1753, scikit-learn's LDA 1830. {SEE},
section "Topic models".""",
}


@contextlib.contextmanager
def _columns(width: int):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = old


def command_help(*argv: str) -> str:
    """The text `python -m models *argv --help` prints (run in-process)."""
    from models.__main__ import main

    out = io.StringIO()
    with _columns(100), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue().replace("usage: __main__.py", "usage: python -m models")


def model_names() -> dict[str, str]:
    """Model name -> one-line description, from `python -m models --help`."""
    text = command_help()
    block = text.split("MODEL\n", 1)[1].split("\n\n", 1)[0]
    models: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        match = re.match(r"^ {4}(\S+)\s+(.*)$", line)
        if match:
            name = match.group(1)
            models[name] = match.group(2).strip()
        elif name is not None and line.strip():
            models[name] += " " + line.strip()
    if not models:
        raise RuntimeError(f"no models found in `python -m models --help`:\n{text}")
    return models


def write(target: Path) -> None:
    """Writes `target/index.md` and `target/NAME.md` for every model, replacing what was there."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.md"):
        old.unlink()
    models = model_names()
    for name, description in models.items():
        results = RESULTS.get(name, "No run of this command is recorded in `benchmarks/README.md` yet.")
        (target / f"{name}.md").write_text(f"""# `python -m models {name}`

{description}

## Flags

```text
{command_help(name).rstrip()}
```

Every model writes `metrics.json` and its plots to `--out`, reads the full standard data sets from
`--data-dir` (or `PPL_DATA_DIR`), and otherwise uses the real data that installs with pip.

## Recorded numbers

{results}
""")
    rows = "\n".join(f"| [`{n}`]({n}.md) | {d} |" for n, d in models.items())
    toc = "\n".join(models)
    (target / "index.md").write_text(f"""# Model zoo

Every model runs as `python -m models NAME [flags]`; `python -m models` lists them. These pages are
generated from the command line's own help when the documentation is built.

| command | what it runs |
|---|---|
{rows}

```{{toctree}}
:hidden:
:titlesonly:
{toc}
```
""")
