"""Sphinx configuration: Markdown pages (MyST), numpydoc docstrings, furo."""

import thread_chunks

project = "thread-chunks"
author = "thread-chunks developers"
copyright = "2026, thread-chunks developers"
release = thread_chunks.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True
napoleon_preprocess_types = True

# The builds run offline, so the inventories are small files of our own
# (docs/_inventories/generate.py) that point at each project's documentation.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", "_inventories/python.inv"),
    "anyio": ("https://anyio.readthedocs.io/en/stable", "_inventories/anyio.inv"),
    "tqdm": ("https://tqdm.github.io", "_inventories/tqdm.inv"),
    "distributed": (
        "https://distributed.dask.org/en/stable",
        "_inventories/distributed.inv",
    ),
}

html_theme = "furo"
html_title = "thread-chunks"
html_static_path = ["_static"]
