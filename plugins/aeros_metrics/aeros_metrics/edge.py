"""The ASGI wrapper: measures every HTTP request and answers the scrape path itself.

It sits at ``Stage.OBSERVE - 10``: outside the cache, compression and headers wrappers (so the
scrape is never cached nor compressed and every request is measured, edge cache hits and
``soft_limit`` 503s included) and inside the access log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aeros_core.observe import RouteRecorder
from aeros_core.pipeline import ASGIApp

from .exposition import CONTENT_TYPE, Exposition
from .metrics import ProcessMetrics

_SCRAPE_HEADERS = [(b"content-type", CONTENT_TYPE.encode()), (b"cache-control", b"no-store")]
_NOT_ALLOWED = b"405 Method Not Allowed: the metrics path answers GET and HEAD.\n"


def metrics_wrapper(
    path: str, metrics: ProcessMetrics, exposition: Exposition, routes: RouteRecorder
) -> Callable[[ASGIApp], ASGIApp]:
    def wrap(app: ASGIApp) -> ASGIApp:
        perf_counter = time.perf_counter
        started_request = metrics.started
        finished_request = metrics.finished
        route_of = routes.route

        async def measured(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            if scope["path"] == path:
                return await scrape(scope, send)
            started = perf_counter()
            status = 500
            done = False
            started_request()  # in flight from now on

            def watching_send(message: dict[str, Any]) -> Any:
                # Counted before the last body message goes to the server: a response a client
                # received is on file even if this worker is SIGKILLed the next instant.
                nonlocal status, done
                kind = message["type"]
                if kind == "http.response.start":
                    status = message["status"]
                elif kind == "http.response.body" and not done and not message.get("more_body", False):
                    done = True
                    finished_request(scope["method"], route_of(scope, status), status, perf_counter() - started)
                return send(message)

            try:
                await app(scope, receive, watching_send)
            finally:
                if not done:  # no complete response: an error, or the client went away
                    finished_request(scope["method"], route_of(scope, status), status, perf_counter() - started)

        async def scrape(scope: dict[str, Any], send: Any) -> None:
            if scope["method"] not in ("GET", "HEAD"):
                headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"allow", b"GET, HEAD")]
                await send({"type": "http.response.start", "status": 405, "headers": headers})
                await send({"type": "http.response.body", "body": _NOT_ALLOWED})
                return
            body = await asyncio.to_thread(exposition.render)
            headers = [*_SCRAPE_HEADERS, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

        return measured

    return wrap
