"""Model graphs: `ppl.render(meta_bn, **observed)` draws the Bayesian network a builder makes.

The builder is traced, never run on numbers: once abstractly (`jax.eval_shape`) to list its nodes
with their distributions and shapes, and once with every node's value replaced by an input of a
`jax.make_jaxpr` trace (`ppl.substitute`), so that `ppl.provenance` can tell which node values each
node's distribution parameters (or a deterministic node's value) are computed from: those are the
edges, found from the code, not declared by the user.

The drawing shows stochastic nodes as ellipses (observed ones shaded), deterministic nodes as dashed
boxes, each labelled with its distribution and its value's shape, and plates for what the DSL knows
about shapes: a plate per `n_samples` (the particles a node is drawn with) and, inside it, a plate
around each node whose `group_ndims` axes form one event (labelled with their sizes).

Output is always DOT text (`ModelGraph.source`, no dependency); SVG, PNG or PDF need the `graphviz`
Python package (`pip install graphviz`, or the `render` extra) and Graphviz's `dot` program on the
PATH. In Jupyter a `ModelGraph` displays itself as SVG when both are there.

Example:
  >>> graph = ppl.render(build_gen(params, n=128, n_particles=10), x=x_batch)
  >>> print(graph.source)            # DOT text
  >>> graph.edges                    # (("z", "x_mean"), ("z", "x"))
  >>> graph.save("vae.svg")          # needs graphviz and dot
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from ppl.meta import MetaBayesianNet
from ppl.provenance import provenance
from ppl.substitution import NodeSite, substitute
from ppl.tensors import StochasticTensor

__all__ = ["GraphNode", "Plate", "ModelGraph", "render"]

_TEXT_FORMATS = {".dot": "dot", ".gv": "dot"}


class GraphNode(NamedTuple):
    """A node of a model graph.

    Attributes:
      name: the node's name.
      distribution: its distribution's name (e.g. "Normal", "Bernoulli"); None for a deterministic
        node.
      shape: the shape of its value, `[n_samples, *batch_shape, *event_shape]` for a sampled node,
        the observation's shape for an observed one.
      batch_shape, event_shape: the distribution's (empty for a deterministic node).
      n_samples: the `n_samples` it is drawn with, or None.
      group_ndims: how many rightmost batch axes form one event.
      is_observed: whether it was observed.
      dtype: the value's dtype.
    """

    name: str
    distribution: str | None
    shape: tuple[int, ...]
    batch_shape: tuple[int, ...]
    event_shape: tuple[int, ...]
    n_samples: int | None
    group_ndims: int
    is_observed: bool
    dtype: Any

    @property
    def is_deterministic(self) -> bool:
        """Whether the node is deterministic."""
        return self.distribution is None


class Plate(NamedTuple):
    """A plate: nodes repeated along axes the DSL knows about.

    Attributes:
      name: its identifier (`"n_samples=10"`, or `"<node>/group_ndims"`).
      kind: `"n_samples"` (the particle axis a node is drawn with) or `"group_ndims"` (the batch
        axes a node's `log_prob` sums into one event).
      label: the text drawn on it.
      shape: the sizes of its axes.
      nodes: the nodes inside it, directly or in an inner plate.
      parent: the name of the plate it sits in, or None.
    """

    name: str
    kind: str
    label: str
    shape: tuple[int, ...]
    nodes: tuple[str, ...]
    parent: str | None


class ModelGraph:
    """The network of a model: nodes, edges (parent, child) and plates; draws itself as DOT.

    Made by `ppl.render`. `source` is the DOT text; `pipe(format)` and `save(path)` draw it with
    Graphviz.

    Attributes:
      name: the builder's name.
      nodes: `{name: GraphNode}` in creation order.
      edges: `((parent, child), ...)`: `child`'s distribution parameters (or value) are computed
        from `parent`'s value.
      plates: the plates (`Plate` records), outer ones first.
    """

    def __init__(self, name: str, nodes: dict[str, GraphNode], edges: tuple[tuple[str, str], ...],
                 plates: tuple[Plate, ...]):
        self.name = name
        self.nodes = dict(nodes)
        self.edges = tuple(edges)
        self.plates = tuple(plates)

    def parents(self, name: str) -> list[str]:
        """The nodes `name` is computed from, in creation order."""
        return [parent for parent, child in self.edges if child == name]

    @property
    def source(self) -> str:
        """The graph as DOT text (Graphviz's language), e.g. for `dot -Tsvg`."""
        return _dot(self)

    def pipe(self, format: str = "svg") -> bytes:
        """The graph drawn by Graphviz in `format` ("svg", "png", "pdf", ...).

        Raises:
          ImportError: the `graphviz` Python package is missing.
          RuntimeError: Graphviz's `dot` program is not on the PATH.
        """
        return _graphviz().Source(self.source).pipe(format=format)

    def save(self, path: str | pathlib.Path, format: str | None = None) -> pathlib.Path:
        """Writes the graph to `path`: DOT text for ".dot"/".gv", else drawn in the suffix's format.

        Args:
          path: the file to write, e.g. "vae.svg", "vae.png" or "vae.dot".
          format: the format, if not the suffix's.

        Returns:
          The path written.

        Raises:
          ImportError / RuntimeError: an image format without the `graphviz` package or `dot`.
        """
        path = pathlib.Path(path)
        format = format or _TEXT_FORMATS.get(path.suffix, path.suffix.lstrip(".") or "dot")
        if format == "dot":
            path.write_text(self.source)
        else:
            path.write_bytes(self.pipe(format))
        return path

    def _repr_mimebundle_(self, include=None, exclude=None):
        if shutil.which("dot") is None:
            return {"text/plain": repr(self)}
        try:
            return {"image/svg+xml": self.pipe("svg").decode()}
        except ImportError:
            return {"text/plain": repr(self)}

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"ModelGraph({self.name!r}, nodes={list(self.nodes)}, edges={list(self.edges)})"


def render(meta_bn: MetaBayesianNet, /, **observed: Any) -> ModelGraph:
    """Traces a model builder and returns its graph: nodes, the edges between them, and plates.

    Nothing is computed: the builder is traced abstractly (no key is needed), with the given
    observations.

    Args:
      meta_bn: the model, a `ppl.MetaBayesianNet` (the decorated builder called with its arguments).
      **observed: node name -> value, as for `MetaBayesianNet.observe` (observed nodes are shaded).

    Returns:
      A `ModelGraph`; `.source` is its DOT text, `.save("model.svg")` draws it.

    Raises:
      TypeError: `meta_bn` is not a MetaBayesianNet.
      ValueError: an observation error, as in `MetaBayesianNet.observe`.

    Example:
      >>> graph = ppl.render(build_gen(params, n=128, n_particles=10), x=x_batch)
      >>> graph.parents("x")
      ['z']
    """
    if not isinstance(meta_bn, MetaBayesianNet):
        hint = " (call the decorated builder with its arguments)" if callable(meta_bn) else ""
        raise TypeError(f"render needs a ppl.MetaBayesianNet{hint}, got {type(meta_bn).__name__}")
    nodes = _trace_nodes(meta_bn, observed)
    parents = _trace_parents(meta_bn, observed, nodes)
    edges = tuple((parent, child) for child in nodes for parent in nodes if parent in parents[child])
    return ModelGraph(meta_bn.name, nodes, edges, _plates(nodes))


def _trace_nodes(meta_bn: MetaBayesianNet, observed) -> dict[str, GraphNode]:
    """Every node of the builder with its distribution and shapes, from an abstract trace."""
    nodes: dict[str, GraphNode] = {}

    def build(key):
        for name, node in meta_bn.observe(key, **observed).nodes.items():
            shape, dtype = tuple(node.value.shape), node.value.dtype
            if isinstance(node, StochasticTensor):
                d = node.distribution
                nodes[name] = GraphNode(name, _distribution_name(d), shape, tuple(d.batch_shape),
                                        tuple(d.event_shape), node.n_samples, node.group_ndims,
                                        node.is_observed, dtype)
            else:
                nodes[name] = GraphNode(name, None, shape, (), (), None, 0, False, dtype)

    # the key is abstract here: it only lets latent nodes have values to trace through
    jax.eval_shape(build, jax.random.key(0))
    return nodes


def _trace_parents(meta_bn: MetaBayesianNet, observed, nodes: dict[str, GraphNode]) -> dict[str, frozenset]:
    """For each node, the nodes whose values its parameters (or value) are computed from."""
    sizes: dict[str, int] = {}

    def outputs(values):
        computed = {}

        def given(site: NodeSite):
            if site.distribution is None:
                computed[site.name] = [site.value]
            return values.get(site.name)

        with substitute(given):
            bn = meta_bn.observe(**observed)       # every node is given its value: no key needed
        flat = []
        for name in nodes:
            node = bn[name]
            leaves = (jax.tree_util.tree_leaves(node.distribution) if isinstance(node, StochasticTensor)
                      else computed[name])
            sizes[name] = len(leaves)
            flat.extend(jnp.asarray(leaf) for leaf in leaves)
        return flat

    inputs = {name: jax.ShapeDtypeStruct(node.shape, node.dtype) for name, node in nodes.items()}
    labels = iter(provenance(outputs, inputs))
    return {name: frozenset().union(*[next(labels) for _ in range(sizes[name])]) - {name} for name in nodes}


def _distribution_name(distribution: dist.Distribution) -> str:
    if isinstance(distribution, (dist.ExpandedDistribution, dist.Independent, dist.MaskedDistribution)):
        return _distribution_name(distribution.base_dist)
    if isinstance(distribution, dist.FoldedDistribution):
        return f"Folded{_distribution_name(distribution.base_dist)}"
    if isinstance(distribution, dist.TransformedDistribution):
        return f"{_distribution_name(distribution.base_dist)} (transformed)"
    name = type(distribution).__name__
    for suffix in ("Logits", "Probs"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name


def _plates(nodes: dict[str, GraphNode]) -> tuple[Plate, ...]:
    plates = []
    for n in sorted({node.n_samples for node in nodes.values() if node.n_samples is not None}):
        members = tuple(name for name, node in nodes.items() if node.n_samples == n)
        plates.append(Plate(f"n_samples={n}", "n_samples", f"n_samples = {n}", (n,), members, None))
    for name, node in nodes.items():
        if node.group_ndims:
            grouped = node.batch_shape[len(node.batch_shape) - node.group_ndims:]
            sizes = " × ".join(str(size) for size in grouped)
            parent = None if node.n_samples is None else f"n_samples={node.n_samples}"
            label = f"{sizes} (group_ndims={node.group_ndims})"
            plates.append(Plate(f"{name}/group_ndims", "group_ndims", label, grouped, (name,), parent))
    return tuple(plates)


# ---------------------------------------------------------------------------------------------- DOT
def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str | None) -> str:
    return '"' + "\\n".join(str(line).replace("\\", "\\\\").replace('"', '\\"') for line in lines) + '"'


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _node_statement(node: GraphNode) -> str:
    if node.is_deterministic:
        return f'{_quote(node.name)} [label={_label(node.name, "deterministic", _shape_text(node.shape))}, ' \
               'shape=box, style="rounded,dashed"];'
    shape = _shape_text(node.shape) + (f" event {_shape_text(node.event_shape)}" if node.event_shape else "")
    style = ', style=filled, fillcolor="#d9d9d9"' if node.is_observed else ""
    return f"{_quote(node.name)} [label={_label(node.name, node.distribution, shape)}, shape=ellipse{style}];"


def _innermost(graph: ModelGraph) -> dict[str, str]:
    """Each node in a plate -> the innermost plate holding it (group plates sit inside n_samples)."""
    place = {}
    for plate in graph.plates:                  # outer plates come first, inner ones overwrite
        for name in plate.nodes:
            place[name] = plate.name
    return place


def _dot(graph: ModelGraph) -> str:
    lines = [f"digraph {_quote(graph.name)} {{",
             '  graph [fontname="Helvetica", fontsize=11, labeljust=r, labelloc=b];',
             '  node [fontname="Helvetica", fontsize=11];',
             "  edge [arrowsize=0.7];"]
    place = _innermost(graph)

    def emit(plate: Plate, indent: str) -> None:
        lines.append(f"{indent}subgraph {_quote('cluster_' + plate.name)} {{")
        lines.append(f'{indent}  label={_quote(plate.label)}; style=rounded;')
        lines.extend(indent + "  " + _node_statement(graph.nodes[name]) for name in plate.nodes
                     if place[name] == plate.name)
        for child in graph.plates:
            if child.parent == plate.name:
                emit(child, indent + "  ")
        lines.append(indent + "}")

    for plate in graph.plates:
        if plate.parent is None:
            emit(plate, "  ")
    lines.extend("  " + _node_statement(node) for name, node in graph.nodes.items() if name not in place)
    lines.extend(f"  {_quote(parent)} -> {_quote(child)};" for parent, child in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise ImportError("drawing a model graph as an image needs the graphviz Python package: pip "
                          "install graphviz (or the `render` extra, pip install 'ppl-jax[render]'); the "
                          "DOT text needs nothing: ModelGraph.source") from None
    if shutil.which("dot") is None:
        raise RuntimeError("drawing a model graph as an image needs Graphviz's `dot` program, which is not "
                           "on the PATH: install Graphviz (apt-get install graphviz, brew install graphviz "
                           "or conda install graphviz); the DOT text needs nothing: ModelGraph.source")
    return graphviz

