"""The model zoo, written in the `ppl` DSL, with its command line (`python -m models NAME`).

Layout, by family: `models.data` (every data loader, `load_dataset`), `models.vae` (VAE, its
discrete-latent and flow variants, IWAE, SBN), `models.gp` (kernels, exact GP, SVGP),
`models.topics` (LDA, the logistic-normal topic model), and the single-model families
`models.blr`, `models.bnn`, `models.gaussian`, `models.pmf`. `models.cli` holds what the command
lines share; `models/__main__.py` lists the commands in an explicit table.
"""

__all__: list[str] = []
