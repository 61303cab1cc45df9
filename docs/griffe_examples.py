"""A griffe extension for the API page (mkdocs.yml): docstrings as users see them at run time.

* The package's docstrings title their doctests ``Example:`` (singular), which Google style and our
  doctests accept but griffe reads as an admonition of Markdown, where ``>>>`` lines and their output are
  not code. The title is renamed ``Examples:`` so that mkdocstrings renders them as code blocks.
* A docstring with a ``{arguments}`` or ``{metrics}`` placeholder is filled at import time (the argument
  list and the metric table are written once, in ``chase_integrations.core``); griffe reads the source,
  so for those objects the docstring is taken from the imported object instead.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from griffe import Extension, Object, dynamic_import

_TITLE = re.compile(r"^(?P<indent>[ \t]*)Example(?: \([^)]*\))?:[ \t]*$", re.M)
_PLACEHOLDER = re.compile(r"\{(arguments|metrics)\}")


class ExampleSections(Extension):
    """Fill templated docstrings from the imported object; rename ``Example:`` titles to ``Examples:``."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is None:
            return
        value = obj.docstring.value
        if _PLACEHOLDER.search(value):
            value = inspect.cleandoc(dynamic_import(obj.path).__doc__ or "")
        obj.docstring.value = _TITLE.sub(r"\g<indent>Examples:", value)
