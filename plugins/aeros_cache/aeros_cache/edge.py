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
from .key import base_key, request_facts, variant_key
from .options import SCOPE_KEY, ViewOptions
from .rules import bypasses, hit, may_serve, response_entry

if TYPE_CHECKING:
    from .plugin import CachePlugin

log = logging.getLogger("aeros.cache")


class Edge:
    def __init__(self, plugin: CachePlugin) -> None:
        self.plugin = plugin

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
        if index.data.get((method, path)) is options:
            return
        if self.request_functions(request.blueprints):
            return  # they may authenticate: hits must go through Quart
        index.add(method, path, options)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        plugin = self.plugin
        lookup = plugin.index.data.get
        stats = plugin.stats

        async def cache_edge(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                options = lookup((scope["method"], scope["path"]))
                if options is not None:
                    answer = await self.lookup(options, scope)
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

    async def lookup(self, options: ViewOptions, scope: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The two ASGI messages of a fresh hit, or ``None`` (the lookup is left in the scope)."""
        try:
            headers = scope["headers"]
            host, credentials, if_none_match = request_facts(headers)
            if bypasses(options, credentials):
                return None
            key = base_key(options.view_id, options.prefix_for(scope["path"]), scope, options.query_string, host)
            backend = self.plugin.backend
            if isinstance(backend, SimpleCache):
                entry = backend.get_now(key)
                if entry is not None and entry.kind == "vary":
                    entry = backend.get_now(variant_key(key, entry.vary, headers))
                entry = response_entry(entry)
            else:
                entry = await self.plugin.lookup(key, headers)
            now = time.time()
            if entry is None or not entry.is_fresh(now) or not may_serve(entry, credentials):
                scope[SCOPE_KEY] = (key, entry)
                return None
            status, raw_headers, body = hit(entry, now, if_none_match, head=scope["method"] == "HEAD")
            return (
                {"type": "http.response.start", "status": status, "headers": raw_headers},
                {"type": "http.response.body", "body": body},
            )
        except Exception:
            log.exception("cache lookup at the ASGI edge failed; handing the request to Quart")
            return None
