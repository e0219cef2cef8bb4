"""A griffe extension for the API reference: Sphinx roles in docstrings become inline code.

The core's docstrings use ``:class:`~aeros_core.pipeline.Stage``` and ``:func:`name```;
Markdown would show the role literally, so ``:role:`~a.b.C``` becomes `` `C` `` and
``:role:`a.b.C``` becomes `` `a.b.C` ``. Loaded from mkdocs.yml (``extensions:``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`")


def plain(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(plain, obj.docstring.value)
