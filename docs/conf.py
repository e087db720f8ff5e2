"""Sphinx configuration of the odeion-archive documentation."""

from __future__ import annotations

import doctest

from odeion_archive import __version__

project = "odeion-archive"
author = "The Odeion authors"
copyright = "the Odeion authors"  # noqa: A001 - the name Sphinx reads
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "furo"
html_title = f"odeion-archive {release}"

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"

# The examples print values whose spacing is not worth pinning down, and use
# "..." for parts that change from run to run (archive names, times).
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)
doctest_test_doctest_blocks = ""
