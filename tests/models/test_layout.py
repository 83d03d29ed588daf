"""The zoo's layout: no import cycles, no argparse or `models.cli` below the command line, a command
table that imports nothing to list, and one MNIST subset rule for every command.

Cycles are found on the static import graph of every module under `models/` (module-level and
function-level imports alike, so a cycle hidden behind a lazy import is caught too); the runtime
claims (what listing the commands or importing the libraries loads) run in fresh interpreters.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest

import models.__main__
from models import cli
from models.data import mnist
from tests.conftest import REPO_ROOT

MODELS = REPO_ROOT / "models"
# Modules that parse flags: the command table, the shared CLI helpers, each family's command line
# and the single-model files whose `main(args)` sits beside the model (models/bnn.py etc.).
COMMAND_LINE = {"models.__main__", "models.cli"} | {module for module, _ in models.__main__.COMMANDS.values()}


def _name(path):
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path) -> set[str]:
    """The `models.*` modules `path` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:  # `from models.vae import model` imports a module
                if (REPO_ROOT / node.module.replace(".", "/") / f"{alias.name}.py").exists():
                    found.add(f"{node.module}.{alias.name}")
    return {name for name in found if name == "models" or name.startswith("models.")}


GRAPH = {_name(path): _imports(path) - {_name(path)} for path in MODELS.rglob("*.py")}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_sees_the_families():
    assert {"models.vae.model", "models.gp.svgp", "models.topics.lda", "models.data.mnist"} <= set(GRAPH)
    assert "models.data.mnist" in GRAPH["models.vae._training"]
    assert "models.vae.model" in GRAPH["models.vae.iwae"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_cycle_through(module):
    assert module not in _reachable(module), f"{module} imports itself through {sorted(_reachable(module))}"


@pytest.mark.parametrize("module", sorted(set(GRAPH) - COMMAND_LINE))
def test_library_modules_never_reach_the_command_line(module):
    assert not _reachable(module) & COMMAND_LINE, f"{module} imports {_reachable(module) & COMMAND_LINE}"
    source = (MODELS.parent / (module.replace(".", "/") + ".py"))
    source = source if source.exists() else MODELS.parent / module.replace(".", "/") / "__init__.py"
    assert "argparse" not in source.read_text(), f"{module} mentions argparse below the command line"


@pytest.mark.parametrize("package", ["ppl", "inference"])
def test_core_packages_never_import_the_zoo(package):
    for path in (REPO_ROOT / package).rglob("*.py"):
        assert not _imports(path), f"{path} imports {_imports(path)}"


def _loaded_after(code: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(sorted(m for m in sys.modules "
                          "if m == 'models' or m.startswith('models.')))"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True)
    return eval(run.stdout.strip().splitlines()[-1])


def test_listing_the_commands_imports_no_model():
    code = "import contextlib, io, models.__main__ as m\nwith contextlib.redirect_stdout(io.StringIO()):\n" \
           "    assert m.main([]) == 2"
    assert _loaded_after(code) == ["models", "models.__main__"]


def test_data_and_core_packages_load_no_command_line():
    loaded = _loaded_after("import ppl, inference, models.data")
    assert "models.cli" not in loaded and not [m for m in loaded if m.startswith(("models.vae", "models.gp"))]


def test_cli_lists_the_mnist_data_sets_of_the_loader():
    assert cli.MNIST_DATASETS == mnist.DATASETS


def test_subset_is_evenly_spaced_and_checked():
    x = np.arange(10)
    np.testing.assert_array_equal(mnist.subset(x, 3), [0, 4, 9])
    assert mnist.subset(x, None) is x and mnist.subset(x, 20) is x
    with pytest.raises(ValueError, match="n >= 1"):
        mnist.subset(x, 0)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("command", ["vae", "iwae", "sbn"])
def test_every_mnist_command_selects_digits_by_the_one_rule(command, tmp_path, monkeypatch):
    seen = {}

    def recording_prepare(dataset, data_dir=None, **kwargs):
        seen.update(kwargs, dataset=dataset)
        raise _Stop

    monkeypatch.setattr(mnist, "prepare", recording_prepare)
    with pytest.raises(_Stop):
        models.__main__.main([command, "--data-dir", "", "--dataset", "mnist_5k", "--n-train", "50",
                              "--n-test", "7", "--out", str(tmp_path / "out")])
    assert seen["dataset"] == "mnist_5k" and seen["n_train"] == 50 and seen["n_test"] == 7
    monkeypatch.undo()
    data = mnist.prepare("mnist_5k", n_train=50, n_test=7)
    np.testing.assert_array_equal(data.x_train, mnist.subset(mnist.load_mnist_5k().x_train, 50))
    assert data.x_test.shape == (7, 784)
