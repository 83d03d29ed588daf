"""Sphinx configuration: `python -m sphinx -W --keep-going -b html docs docs/_build/html`.

Pages generated at build time (never edited by hand, never committed): the API reference from
`ppl.__all__` and `inference.__all__` (`docs/api/`), the model zoo from `python -m models`'s command
line (`docs/zoo/`), copies of the tutorial notebooks (`docs/tutorials/`, rendered with the outputs
stored by `python -m docs.execute_notebooks`: nothing is executed here, the notebook tests run them)
and the DOT text of the modelling page's graphs (`docs/graphs/*.dot`).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(HERE / "_ext")]

import api_pages  # noqa: E402
import model_graphs  # noqa: E402
import tutorial_pages  # noqa: E402
import zoo_pages  # noqa: E402

project = "ppl"
author = "the ppl authors"
copyright = "2026, the ppl authors"
release = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "ppl"

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"           # rendered with their stored outputs; tests/notebooks runs them
suppress_warnings = ["myst.header"]  # notebooks start below H1 in places

# Documented objects stay out of the pages' tables of contents (each API page lists its names in an
# autosummary table instead): every page's sidebar is built from the whole site's tree, and with an
# entry per object that copying took about a tenth of the build.
toc_object_entries = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True            # NamedTuple `Attributes:` sections do not duplicate the fields
napoleon_use_rtype = False
default_role = "code"               # docstrings write `name` for code, as in Markdown


def _drop_type_docstrings(app, what, name, obj, options, lines):
    """A constant (a dict, a tuple) has no docstring of its own: do not show its type's."""
    own = "\n".join(lines).strip()
    if what in ("data", "attribute") and own and own == str(type(obj).__doc__ or "").strip():
        lines.clear()


def setup(app):
    app.connect("autodoc-process-docstring", _drop_type_docstrings)


api_pages.write(HERE / "api")
zoo_pages.write(HERE / "zoo")
tutorial_pages.write(ROOT / "notebooks", HERE / "tutorials")
model_graphs.write_dot(HERE / "graphs")
