"""One access-log line per HTTP request, written at the ASGI edge whatever the backend.

Common log format plus the response time:
``127.0.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET /path?q=1 HTTP/1.1" 200 17 1.23ms``
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..hookspecs import hookimpl
from ..pipeline import ASGIApp, AsgiWrapper, Stage
from ..runner.settings import ServerSettings

access_logger = logging.getLogger("aeros.access")


class _Clock:
    """The common-log timestamp, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.text = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self.text


def access_log(app: ASGIApp) -> ASGIApp:
    clock = _Clock()
    perf_counter = time.perf_counter
    log = access_logger.info

    async def logged(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not access_logger.isEnabledFor(logging.INFO):
            return await app(scope, receive, send)
        started = perf_counter()
        status = 500
        size = 0

        async def counting_send(message: dict) -> None:
            nonlocal status, size
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            query = scope.get("query_string", b"")
            target = scope.get("raw_path") or scope["path"].encode()
            if isinstance(target, bytes):
                target = target.decode("latin-1")
            if query:
                target += "?" + query.decode("latin-1")
            log(
                '%s - - [%s] "%s %s HTTP/%s" %d %s %.2fms',
                client[0] if client else "-",
                clock.now(),
                scope["method"],
                target,
                scope.get("http_version", "1.1"),
                status,
                size or "-",
                (perf_counter() - started) * 1000,
            )

    return logged


@hookimpl
def aeros_asgi_wrapper(settings: ServerSettings) -> AsgiWrapper | None:
    if not (settings.access_log_to_std or settings.access_log_file):
        return None
    return AsgiWrapper(Stage.OBSERVE, access_log)
