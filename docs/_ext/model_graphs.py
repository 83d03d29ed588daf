"""The models drawn on the modelling page: their code, and their graphs by `ppl.render`.

At build time `write_dot` writes each graph's DOT text (`docs/_static/graphs/NAME.dot`); DOT needs
nothing but `ppl`. The SVG drawings next to them are committed, because drawing needs Graphviz's
`dot` program, which the CI machine lacks: after changing a model or `ppl.graph`, run
`python docs/_ext/model_graphs.py` on a machine with `dot` and commit the `.svg` files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp

import ppl

__all__ = ["GRAPHS", "build_lda", "build_vae", "write_dot", "write_svg"]

# --8<-- [start:vae]
@ppl.meta_bayesian_net
def build_vae(params, n, z_dim=40, n_particles=None):
    bn = ppl.BayesianNet()
    z = bn.normal("z", jnp.zeros([n, z_dim]), std=1., group_ndims=1, n_samples=n_particles)
    hidden = jax.nn.relu(z @ params["w1"])
    x_logits = hidden @ params["w2"]
    bn.deterministic("x_mean", jax.nn.sigmoid(x_logits))
    bn.bernoulli("x", logits=x_logits, group_ndims=1)
    return bn
# --8<-- [end:vae]


# --8<-- [start:lda]
@ppl.meta_bayesian_net
def build_lda(n_docs, n_topics, n_vocab, alpha=0.1, beta=0.01, n_particles=None):
    bn = ppl.BayesianNet()
    phi = bn.dirichlet("phi", jnp.full([n_topics, n_vocab], beta), group_ndims=1, n_samples=n_particles)
    theta = bn.dirichlet("theta", jnp.full([n_docs, n_topics], alpha), group_ndims=1, n_samples=n_particles)
    bn.unnormalized_multinomial("x", logits=jnp.log(theta @ phi), group_ndims=1)
    return bn
# --8<-- [end:lda]


def _vae_graph() -> ppl.ModelGraph:
    params = {"w1": jnp.zeros([40, 500]), "w2": jnp.zeros([500, 784])}
    return ppl.render(build_vae(params, n=128, n_particles=10), x=jnp.zeros([128, 784]))


def _lda_graph() -> ppl.ModelGraph:
    return ppl.render(build_lda(100, 10, 500, n_particles=5), x=jnp.ones([100, 500]))


GRAPHS = {"vae": _vae_graph, "lda": _lda_graph}


def write_dot(target: Path) -> None:
    """Writes `target/NAME.dot` for every graph in `GRAPHS` (no Graphviz needed)."""
    target.mkdir(parents=True, exist_ok=True)
    for name, graph in GRAPHS.items():
        (target / f"{name}.dot").write_text(graph().source)


def write_svg(target: Path) -> None:
    """Writes `target/NAME.svg` for every graph (needs the `graphviz` package and `dot`)."""
    target.mkdir(parents=True, exist_ok=True)
    for name, graph in GRAPHS.items():
        graph().save(target / f"{name}.svg")


if __name__ == "__main__":
    write_svg(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "graphs")
