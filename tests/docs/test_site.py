"""The documentation site builds with warnings as errors, and its API reference covers `__all__`.

The site is built once (`python -m sphinx -W --keep-going -b html docs ...`, as README says) into a
temporary directory; nothing is executed but the API pages' imports, the model zoo's `--help` and
the tracing of the two model graphs. The checks read the built site's object inventory
(`objects.inv`), the index Sphinx writes of every documented name.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ppl", "inference")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")]
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, f"the docs build failed:\n{built.stdout[-3000:]}\n{built.stderr[-6000:]}"
    return out / "html"


def _inventory(html: Path) -> dict[str, set[str]]:
    """`{role: {name, ...}}` from the site's `objects.inv` (Sphinx's version-2 format)."""
    raw = (html / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four text lines, then the zlib-compressed body
        header_end = raw.index(b"\n", header_end) + 1
    inventory: dict[str, set[str]] = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        name, role = line.split(" ", 2)[:2]
        inventory.setdefault(role, set()).add(name)
    return inventory


def _public_modules() -> list[types.ModuleType]:
    """`ppl`, `inference` and every module their `__all__`s export, recursively."""
    found: dict[str, types.ModuleType] = {}
    queue = [importlib.import_module(name) for name in PACKAGES]
    while queue:
        module = queue.pop(0)
        if module.__name__ in found:
            continue
        found[module.__name__] = module
        queue += [value for value in (getattr(module, n) for n in module.__all__)
                  if isinstance(value, types.ModuleType) and value.__name__.startswith(PACKAGES)]
    return list(found.values())


@pytest.mark.slow
def test_api_reference_documents_every_public_name(site):
    modules = _public_modules()
    inventory = _inventory(site)
    python_names = set().union(*(names for role, names in inventory.items() if role.startswith("py:")))
    documented_objects = {}
    for qualname in python_names:
        module_name, _, attribute = qualname.rpartition(".")
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attribute):
            documented_objects[id(getattr(module, attribute))] = qualname
    missing = []
    for module in modules:
        assert module.__name__ in inventory["py:module"], f"no API page for {module.__name__}"
        for name in module.__all__:
            value = getattr(module, name)
            qualname = f"{module.__name__}.{name}"
            if isinstance(value, types.ModuleType):
                if value.__name__ not in inventory["py:module"]:
                    missing.append(qualname)
            elif qualname not in python_names and id(value) not in documented_objects:
                missing.append(qualname)
    assert not missing, f"public names missing from the API reference: {missing}"
    assert "ppl.BayesianNet.normal" in python_names  # members of classes are documented too


@pytest.mark.slow
def test_site_has_every_page(site):
    docs = _inventory(site)["std:doc"]
    pages = {"getting_started", "coming_from_zhusuan", "coming_from_numpyro", "glossary", "guide/modelling",
             "guide/variational", "guide/importance", "guide/mcmc", "guide/diagnostics", "guide/training",
             "guide/devices", "api/index", "zoo/index", "tutorials/index"}
    assert pages <= docs, f"missing pages: {sorted(pages - docs)}"
    notebooks = {f"tutorials/{path.stem}" for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks and notebooks <= docs, f"notebooks not rendered: {sorted(notebooks - docs)}"
    zoo = {name for name in docs if name.startswith("zoo/") and name != "zoo/index"}
    assert {"zoo/vae", "zoo/blr", "zoo/lda"} <= zoo
    vae_page = (site / "zoo" / "vae.html").read_text()
    assert "--batch-size" in vae_page and "-89.29" in vae_page  # the flags from --help, the recorded number


@pytest.mark.slow
def test_modelling_page_shows_the_graphs(site):
    page = (site / "guide" / "modelling.html").read_text()
    for name in ("vae", "lda"):
        assert f"{name}.svg" in page
        assert (ROOT / "docs" / "graphs" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    assert "digraph" in page and "cluster_n_samples=10" in page and "UnnormalizedMultinomial" in page
