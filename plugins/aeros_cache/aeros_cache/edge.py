"""The ASGI edge: fresh hits answered before Quart builds a request context.

Only ``(method, path)`` pairs a cached view has served through Quart are looked up (the
:class:`~aeros_cache.index.EdgeIndex`); the key, the rules and the answer are those of the
Quart path (:mod:`aeros_cache.key`, :mod:`aeros_cache.rules`). A miss or a stale entry is
left in the scope and handed to Quart, which does not look it up again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aeros_core.pipeline import ASGIApp, Stage

from .backends import SimpleCache
from .entry import Entry
from .key import prefix_key, request_facts, request_key, variant_key
from .options import SCOPE_KEY, ViewOptions
from .rules import bypasses, hit, may_serve, response_entry

if TYPE_CHECKING:
    from .plugin import CachePlugin

log = logging.getLogger("aeros.cache")

#: the ``http.response.start`` and ``http.response.body`` messages of a hit
Answer = tuple[dict[str, Any], dict[str, Any]]


class Edge:
    def __init__(self, plugin: CachePlugin) -> None:
        self.plugin = plugin
        self.memory: SimpleCache | None = None  #: the backend, when it is this process's memory

    def obstacle(self) -> str | None:
        """Why hits cannot skip Quart for this app (``None``: they can)."""
        app = self.plugin.app
        if app.url_map.host_matching or getattr(app, "subdomain_matching", False):
            return "the app routes by host"
        pipeline = app.request_pipeline
        for step in pipeline.before:
            if step.stage > Stage.STORE and not getattr(step.handler, "aeros_edge_safe", False):
                return f"a plugin answers requests before the cache ({step.handler!r})"
        for step in pipeline.after:
            if step.stage > Stage.STORE and not getattr(step.transform, "aeros_edge_safe", False):
                return f"a plugin changes responses after the cache ({step.transform!r})"
        return None

    def request_functions(self, blueprints: Iterable[str]) -> bool:
        """Whether before/after-request functions (app-level or of these blueprints) apply."""
        app = self.plugin.app
        for name in (None, *blueprints):
            if app.before_request_funcs.get(name) or app.after_request_funcs.get(name):
                return True
        return False

    def remember(self, method: str, path: str, options: ViewOptions, request: Any) -> None:
        index = self.plugin.index
        route = index.data.get((method, path))
        if route is not None and route.options is options:
            return
        if self.request_functions(request.blueprints):
            return  # they may authenticate: hits must go through Quart
        index.add(method, path, EdgeRoute(options, prefix_key(options.view_id, options.prefix_for(path))))

    def wrap(self, app: ASGIApp) -> ASGIApp:
        plugin = self.plugin
        route_of = plugin.index.data.get
        stats = plugin.stats
        # memory of this process is read without an await (no coroutine per hit); other stores are awaited
        backend = plugin.backend
        self.memory = backend if isinstance(backend, SimpleCache) else None
        answer_now = self.answer_now if self.memory is not None else None
        answer_later = self.answer_later

        async def cache_edge(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                route = route_of((scope["method"], scope["path"]))
                if route is not None:
                    answer = answer_now(route, scope) if answer_now is not None else await answer_later(route, scope)
                    if answer is not None:
                        stats["edge_hits"] += 1
                        observe = plugin.observe
                        if observe is not None:
                            observe(app=plugin.app, scope=scope, result="hit")
                        await send(answer[0])
                        await send(answer[1])
                        return
            await app(scope, receive, send)

        return cache_edge

    def answer_now(self, route: EdgeRoute, scope: dict[str, Any]) -> Answer | None:
        """The two ASGI messages of a fresh hit in a :class:`SimpleCache`, or ``None`` (the lookup
        is left in the scope)."""
        try:
            request = self.request(route, scope)
            if request is None:
                return None
            key, credentials, if_none_match = request
            memory = self.memory
            assert memory is not None  # answer_now is used only then
            entry = memory.get_now(key)
            if entry is not None and entry.kind == "vary":
                entry = memory.get_now(variant_key(key, entry.vary, scope["headers"]))
            return self.answer(scope, key, response_entry(entry), credentials, if_none_match)
        except Exception:
            log.exception("cache lookup at the ASGI edge failed; handing the request to Quart")
            return None

    async def answer_later(self, route: EdgeRoute, scope: dict[str, Any]) -> Answer | None:
        """:meth:`answer_now` for a store that is awaited (files, Redis)."""
        try:
            request = self.request(route, scope)
            if request is None:
                return None
            key, credentials, if_none_match = request
            entry = await self.plugin.lookup(key, scope["headers"])
            return self.answer(scope, key, entry, credentials, if_none_match)
        except Exception:
            log.exception("cache lookup at the ASGI edge failed; handing the request to Quart")
            return None

    @staticmethod
    def request(route: EdgeRoute, scope: dict[str, Any]) -> tuple[str, bool, bytes | None] | None:
        """``(key, credentials, if_none_match)`` of a request the cache may answer, else ``None``."""
        options = route.options
        host, credentials, if_none_match = request_facts(scope["headers"])
        if bypasses(options, credentials):
            return None
        scheme = scope.get("scheme", "http")
        query = scope.get("query_string", b"")
        last = route.last  # the key is a function of these three: the last one is kept
        if last is not None and last[0] == host and last[1] == query and last[2] == scheme:
            return last[3], credentials, if_none_match
        key = route.prefix + request_key(scope, options.query_string, host)
        route.last = (host, query, scheme, key)
        return key, credentials, if_none_match

    @staticmethod
    def answer(
        scope: dict[str, Any], key: str, entry: Entry | None, credentials: bool, if_none_match: bytes | None
    ) -> Answer | None:
        """The messages of a hit on ``entry``; ``None`` when it may not answer (left in the scope for Quart)."""
        now = time.time()
        if entry is None or not entry.is_fresh(now) or not may_serve(entry, credentials):
            scope[SCOPE_KEY] = (key, entry)
            return None
        status, raw_headers, body = hit(entry, now, if_none_match, head=scope["method"] == "HEAD")
        return (
            {"type": "http.response.start", "status": status, "headers": raw_headers},
            {"type": "http.response.body", "body": body},
        )


class EdgeRoute:
    """What the edge index holds for a ``(method, path)``: the view's options and the start of its keys."""

    __slots__ = ("options", "prefix", "last")

    def __init__(self, options: ViewOptions, prefix: str) -> None:
        self.options = options
        self.prefix = prefix  #: :func:`~aeros_cache.key.prefix_key` of the view and this path
        #: ``(host, query, scheme, key)`` of the last request looked up (most repeat it)
        self.last: tuple[bytes | None, bytes, str, str] | None = None
