"""What ``@app.cache(...)`` said about a view, and what one request did with the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .entry import Entry

if TYPE_CHECKING:
    from .flight import Renewal

ATTRIBUTE = "_aeros_cache"  #: the ViewOptions of a cached view function
SCOPE_KEY = "aeros_cache.lookup"  #: (key, entry) left in the ASGI scope by the edge
STATE_KEY = "aeros_cache.state"  #: the request's RequestState, in the ASGI scope (cached views only)
REFRESH_KEY = "aeros_cache.refresh"  #: marks the background request of stale-while-revalidate


@dataclass(frozen=True)
class ViewOptions:
    """What ``@app.cache(...)`` said about one view."""

    view_id: str
    timeout: float | None
    key_prefix: str | Callable[[], str]
    unless: Callable[..., Any] | None
    forced_update: Callable[[], Any] | None
    response_filter: Callable[[Any], Any] | None
    query_string: bool
    cache_none: bool
    ignore_credentials: bool
    stale_while_revalidate: float | None
    unless_takes_args: bool = False
    stale_if_error: float | None = None
    tags: tuple[str | Callable[..., Any], ...] = ()
    surrogate_keys: bool = False

    @property
    def edge_ok(self) -> bool:
        """Whether a hit may be served without a request context (no callbacks to run)."""
        return self.unless is None and self.forced_update is None and not callable(self.key_prefix)

    def prefix_for(self, path: str) -> str:
        prefix = self.key_prefix
        if callable(prefix):
            return str(prefix())
        return prefix % path if "%s" in prefix else prefix


class RequestState:
    """One request's dealings with the cache (kept in the ASGI scope, under ``STATE_KEY``)."""

    __slots__ = (
        "options",
        "key",
        "store",
        "future",
        "flight",
        "returned_none",
        "view_ran",
        "lock",
        "renewal",
        "stale",
        "tags",
        "if_none_match",
    )

    def __init__(self, options: ViewOptions) -> None:
        self.options = options
        self.lock: str | None = None  #: the token of the fleet lock this request holds
        self.renewal: Renewal | None = None  #: what keeps that lock from expiring while the view runs
        self.stale: Entry | None = None  #: an expired entry that stale_if_error may still serve
        self.tags: list[str] = []
        self.if_none_match: bytes | None = None
        self.key: str | None = None
        self.store = False
        self.future: asyncio.Future[Any] | None = None
        self.flight: tuple[int, str] | None = None
        self.returned_none = False
        self.view_ran = False
