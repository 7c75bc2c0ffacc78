"""Sphinx configuration: the API reference from the numpydoc docstrings, and the notes in docs/*.md.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (the ``docs`` extra).
"""

import os
import sys
from pathlib import Path

# The views import matplotlib: the build draws nothing and must never open a GUI backend.
os.environ["MPLBACKEND"] = "Agg"
# Document the phasekit of this tree, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phasekit  # noqa: E402

project = "phasekit"
author = "the phasekit authors"
copyright = "the phasekit authors"
release = phasekit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    # The notes are Markdown with $...$ maths and ```math blocks, read on the repository's web view
    # as well; MyST builds them as they are instead of keeping a second reStructuredText copy.
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# numpydoc-style docstrings through napoleon; signatures keep their type hints.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Shapes such as ``(n_state,)`` in parameter types are read as names; where two classes have an
# attribute of that name (Committee.n_state, SiteSymmetricCommittee.n_state) the link is ambiguous
# and pointless, so ambiguous Python cross-references are not warned about.
suppress_warnings = ["ref.python"]
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
# The API pages are written out (docs/api/*.rst): no stub files are generated into the tree.
autosummary_generate = False

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_fence_as_directive = ["math"]
# The notes link to their own sections by the web view's heading slugs (#1-teacher-student-...).
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"phasekit {release}"
