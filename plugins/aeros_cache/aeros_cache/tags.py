"""Tags of cached entries: what a tag may be, and the tags of one request."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("aeros.cache")

#: visible ASCII without spaces or commas (tags travel space-separated in ``Surrogate-Key``)
_TAG = re.compile(r"[!-+\--~]{1,256}")


def check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise ValueError(f"a cache tag is 1-256 visible ASCII characters without spaces or commas, not {tag!r}")
    return tag


def evaluate_tags(tags: Iterable[str | Callable[..., Any]], view_args: Mapping[str, Any]) -> list[str]:
    """The tags of one request: strings as they are, callables called with the view's arguments
    (a string or an iterable of strings). A callable that fails or returns a bad tag is logged,
    and its tags are left out (so the entry is not stored: see the plugin)."""
    found: list[str] = []
    for tag in tags:
        if not callable(tag):
            found.append(tag)
            continue
        try:
            value = tag(**view_args)
            for item in [value] if isinstance(value, str) else list(value):
                found.append(check_tag(item))
        except Exception:
            log.exception("the cache tag callable %r failed; this response is not stored", tag)
            raise
    return list(dict.fromkeys(found))
