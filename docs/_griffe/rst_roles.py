"""A griffe extension for the API reference: Sphinx roles in docstrings become inline code.

The core's docstrings use ``:class:`~aeros_core.pipeline.Stage``` and ``:func:`name```;
Markdown would show the role literally, so ``:role:`~a.b.C``` becomes `` `C` `` and
``:role:`a.b.C``` becomes `` `a.b.C` ``; a paragraph ending in ``::`` (a literal block follows,
indented, which Markdown shows as code too) ends in one colon. Loaded from mkdocs.yml.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.M)  # "example::" + indented block: keep one colon


def plain(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = LITERAL_BLOCK.sub(":", ROLE.sub(plain, obj.docstring.value))
