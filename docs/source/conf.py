"""Sphinx configuration for the pyrovae documentation.

Build from the repository root::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs/source docs/_build/html
"""

from __future__ import annotations

import os
import sys

# Document the checkout this file lives in, even when another copy of pyrovae is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import pyrovae

project = "pyrovae"
author = "pyrovae developers"
copyright = "pyrovae developers"
release = pyrovae.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# No intersphinx: the docs must build offline, and a failed inventory fetch would break -W.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "description"
autodoc_class_signature = "separated"
autoclass_content = "class"
# Only pyrovae's own docstrings: torch's inherited ones (nn.Module.forward, Distribution.expand) are noise
# here and not all of them are valid reST.
autodoc_inherit_docstrings = False

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"pyrovae {release}"
# MathJax comes from a CDN when the pages are viewed; building needs no network.


def _skip_dunder(app, what, name, obj, skip, options):
    """Hide special members such as the ``__new__`` a ``NamedTuple`` generates."""
    return True if name.startswith("__") and name.endswith("__") else None


def setup(app):
    app.connect("autodoc-skip-member", _skip_dunder)
