"""`ppl.render`: nodes, edges (found by tracing), plates and DOT text for the zoo's VAE, BNN and LDA,
the provenance tracker underneath, and image output.

Images need Graphviz's `dot` program, which CI does not install: `test_images_or_a_clear_error`
checks the drawn SVG and PNG where `dot` is on the PATH and the error that names the missing program
where it is not. That is the environment's condition, not a skipped assertion: each branch asserts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import ppl
from models import bnn
from models.topics import lda as lda_model
from models.vae import model as vae
from ppl.provenance import provenance
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def vae_params():
    return vae.init_params(jax.random.key(0), z_dim=4, n_hidden=8)


def _plates(graph):
    return {plate.name: (plate.kind, plate.shape, plate.nodes, plate.parent) for plate in graph.plates}


def test_vae_model_and_variational_net(vae_params):
    x = jnp.zeros((3, 784))
    graph = ppl.render(vae.build_gen(vae_params, 3, z_dim=4, n_particles=2), x=x)
    assert list(graph.nodes) == ["z", "x_mean", "x"]
    z, x_mean, x_node = graph.nodes.values()
    assert (z.distribution, z.shape, z.n_samples, z.group_ndims) == ("Normal", (2, 3, 4), 2, 1)
    assert not z.is_observed
    assert x_mean.is_deterministic and x_mean.shape == (2, 3, 784)
    assert (x_node.distribution, x_node.shape, x_node.is_observed) == ("Bernoulli", (3, 784), True)
    assert set(graph.edges) == {("z", "x_mean"), ("z", "x")} and graph.parents("x") == ["z"]
    assert _plates(graph) == {"n_samples=2": ("n_samples", (2,), ("z",), None),
                              "z/group_ndims": ("group_ndims", (4,), ("z",), "n_samples=2"),
                              "x/group_ndims": ("group_ndims", (784,), ("x",), None)}
    source = graph.source
    for line in ['"z" -> "x_mean";', '"z" -> "x";', 'subgraph "cluster_n_samples=2" {',
                 'label="n_samples = 2";', 'label="4 (group_ndims=1)";',
                 '"z" [label="z\\nNormal\\n[2, 3, 4]", shape=ellipse];',
                 '"x" [label="x\\nBernoulli\\n[3, 784]", shape=ellipse, style=filled',
                 '"x_mean" [label="x_mean\\ndeterministic\\n[2, 3, 784]", shape=box,']:
        assert line in source, line
    # z is drawn inside its group plate, inside the particle plate
    assert source.index("cluster_n_samples=2") < source.index("cluster_z/group_ndims") < source.index('"z" [')
    assert str(graph) == source and "x_mean" in repr(graph)

    unobserved = vae.build_gen(vae_params, 3, z_dim=4).render()      # the method; no particles, x latent
    assert not unobserved.nodes["x"].is_observed and "fillcolor" not in unobserved.source
    assert [plate.kind for plate in unobserved.plates] == ["group_ndims", "group_ndims"]
    q = ppl.render(vae.build_q_net(vae_params, x, z_dim=4, n_particles=2))
    assert list(q.nodes) == ["z"] and q.edges == ()       # x is an argument of q, not a node


def test_bnn():
    graph = ppl.render(bnn.build_bnn(jnp.zeros((5, 4)), [4, 8, 1]), y=jnp.zeros(5))
    assert list(graph.nodes) == ["log_lambda0", "w0", "log_lambda1", "w1", "log_tau", "y_mean", "y"]
    assert set(graph.edges) == {("log_lambda0", "w0"), ("log_lambda1", "w1"), ("w0", "y_mean"),
                                ("w1", "y_mean"), ("y_mean", "y"), ("log_tau", "y")}
    assert graph.nodes["log_tau"].distribution == "Gamma (transformed)"
    assert _plates(graph) == {"w0/group_ndims": ("group_ndims", (8, 5), ("w0",), None),
                              "w1/group_ndims": ("group_ndims", (1, 9), ("w1",), None),
                              "y/group_ndims": ("group_ndims", (5,), ("y",), None)}
    assert 'label="8 × 5 (group_ndims=2)";' in graph.source


def test_lda():
    graph = ppl.render(lda_model.build_lda(6, 3, 10, n_particles=2), x=jnp.ones((6, 10)))
    assert list(graph.nodes) == ["phi", "theta", "x"]
    assert set(graph.edges) == {("phi", "x"), ("theta", "x")}
    assert graph.nodes["phi"].event_shape == (10,)
    assert graph.nodes["x"].distribution == "UnnormalizedMultinomial"
    assert _plates(graph) == {"n_samples=2": ("n_samples", (2,), ("phi", "theta"), None),
                              "phi/group_ndims": ("group_ndims", (3,), ("phi",), "n_samples=2"),
                              "theta/group_ndims": ("group_ndims", (6,), ("theta",), "n_samples=2"),
                              "x/group_ndims": ("group_ndims", (6,), ("x",), None)}
    assert '"phi" [label="phi\\nDirichlet\\n[2, 3, 10] event [10]", shape=ellipse];' in graph.source


@ppl.meta_bayesian_net
def _chain():
    """a -> h (deterministic, used) -> b; c from a through a scan and a jitted function; d constant."""
    bn = ppl.BayesianNet()
    a = bn.normal("a", jnp.zeros(3), std=1.0)
    h = bn.deterministic("h", jnp.tanh(a))
    bn.normal("b", h, std=1.0)
    total, _ = jax.lax.scan(lambda carry, x: (carry + x, None), 0.0, a)
    bn.normal("c", jax.jit(lambda t: t * 2)(total), std=1.0)
    bn.normal('d "quoted"', jnp.ones(2), std=1.0)
    return bn


def test_edges_follow_the_values_used():
    """An edge joins a node to the values its parameters were computed from: through a deterministic
    node whose returned value is used (no edge around it), through scan and jit; a node from
    constants has no parent; quotes in names are escaped in the DOT text."""
    graph = ppl.render(_chain())
    assert set(graph.edges) == {("a", "h"), ("h", "b"), ("a", "c")}
    assert graph.parents('d "quoted"') == []
    assert '"d \\"quoted\\"" [label="d \\"quoted\\"\\nNormal\\n[2]", shape=ellipse];' in graph.source


def test_provenance():
    outputs = provenance(lambda v: [v["a"] * 2, v["a"] + v["b"], jnp.ones(3), jax.nn.relu(v["b"]),
                                    jax.jit(lambda u, w: (u * 2, w))(v["a"], v["b"])[1]],
                         {"a": jnp.ones(3), "b": jax.ShapeDtypeStruct((3,), jnp.float32)})
    assert outputs == [frozenset("a"), frozenset("ab"), frozenset(), frozenset("b"), frozenset("b")]


def test_errors_and_text_output(vae_params, tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=r"render needs a ppl.MetaBayesianNet \(call the decorated builder"):
        ppl.render(vae.build_gen)
    with pytest.raises(ValueError, match="observed \\['w'\\] but the model 'build_gen' has no such node"):
        ppl.render(vae.build_gen(vae_params, 3, z_dim=4), w=jnp.zeros(3))
    graph = ppl.render(vae.build_gen(vae_params, 3, z_dim=4))
    assert graph.save(tmp_path / "vae.dot").read_text() == graph.source       # DOT needs nothing
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Graphviz's `dot` program, which is not on the PATH"):
        graph.save(tmp_path / "vae.svg")
    assert graph._repr_mimebundle_() == {"text/plain": repr(graph)}
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match="needs the graphviz Python package"):
        graph.pipe("png")


def test_images_or_a_clear_error(vae_params, tmp_path):
    """SVG and PNG where Graphviz's `dot` (and the graphviz package) are installed; otherwise the error
    naming what is missing (see the module docstring: CI has no `dot`)."""
    graph = ppl.render(vae.build_gen(vae_params, 3, z_dim=4, n_particles=2), x=jnp.zeros((3, 784)))
    if shutil.which("dot") is None:
        with pytest.raises(RuntimeError, match="`dot` program"):
            graph.save(tmp_path / "vae.png")
        return
    try:
        import graphviz  # noqa: F401  (the `render` and `dev` extras install it)
    except ImportError:
        with pytest.raises(ImportError, match="needs the graphviz Python package"):
            graph.save(tmp_path / "vae.png")
        return
    svg = graph.save(tmp_path / "vae.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "n_samples = 2" in svg
    assert graph.save(tmp_path / "vae.png").read_bytes().startswith(b"\x89PNG")
    assert "image/svg+xml" in graph._repr_mimebundle_()


def test_ppl_does_not_import_graphviz():
    code = "import sys, ppl; sys.exit('graphviz' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False).returncode == 0
