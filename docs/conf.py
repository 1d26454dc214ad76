"""Sphinx configuration: furo, MyST (with notebooks), bibtex citations, autodoc, and the theorem
pages."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "ext"))
sys.path.insert(0, str(HERE.parent))

project = "transformer-theorems"
author = "transformer-theorems contributors"
copyright = "2026, transformer-theorems contributors"

extensions = [
    "myst_nb",  # MyST Markdown pages and notebooks (it bundles myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the site itself: formulas render offline
    "sphinxcontrib.bibtex",
    "theorem_pages",
]
# myst_nb reads .md files: a page with a jupytext header is a notebook, the others plain MyST
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "figures/README.md"]

# The "Using it from Python" notebooks (docs/python) run on every build, in their own folder;
# an error fails the build. `-D nb_execution_mode=off` skips them (the offline-site test does).
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300  # seconds per cell: the sweep cell trains several models
nb_merge_streams = True

html_theme = "furo"
html_title = "transformer-theorems"

import theorem_pages  # noqa: E402  (docs/ext, on the path above)

# the papers' BibTeX entries come from their registrations (plugins included)
bibtex_bibfiles = ["references.bib", str(theorem_pages.write_bibliography().relative_to(HERE))]
bibtex_reference_style = "author_year"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True
