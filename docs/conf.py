"""
Sphinx configuration for the sampy_twisted documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html``.  The build
needs no network: there is no intersphinx, so references to Twisted and the
standard library are left as plain text.
"""

import os
import sys

# Document the checkout, not whatever copy may be installed.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import sampy_twisted  # noqa: E402

project = "sampy_twisted"
author = "the sampy_twisted authors"
copyright = "the sampy_twisted authors"
version = release = sampy_twisted.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []
html_static_path = ["_static"]  # custom.css, which alabaster loads itself
html_theme = "alabaster"
html_theme_options = {
    # Wide enough that code blocks of about 100 columns need no scrolling.
    "page_width": "1320px",
    "sidebar_width": "240px",
    "body_max_width": "none",
    "link": "#0b5cad",
    "link_hover": "#7a3e00",
}

# Python unless a block says otherwise: shell sessions are marked
# ``console``, program output ``text``.
highlight_language = "python3"

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autoclass_content = "class"
