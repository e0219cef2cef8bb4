"""``soft_limit``: requests in flight per serving process beyond it get 503 + Retry-After."""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..pipeline import ASGIApp, AsgiWrapper, Stage
from ..runner.settings import ServerSettings

BUSY_BODY = b"503 Service Unavailable: the server is at its limit of requests in flight; retry shortly.\n"
BUSY_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(BUSY_BODY)).encode()),
    (b"retry-after", b"1"),
]


def soft_limit(limit: int) -> Any:
    def wrap(app: ASGIApp) -> ASGIApp:
        in_flight = 0

        async def limited(scope: dict[str, Any], receive: Any, send: Any) -> None:
            nonlocal in_flight
            if scope["type"] != "http":
                return await app(scope, receive, send)
            if in_flight >= limit:
                await send({"type": "http.response.start", "status": 503, "headers": list(BUSY_HEADERS)})
                await send({"type": "http.response.body", "body": BUSY_BODY})
                return
            in_flight += 1
            try:
                await app(scope, receive, send)
            finally:
                in_flight -= 1

        return limited

    return wrap


@hookimpl
def aeros_asgi_wrapper(settings: ServerSettings) -> AsgiWrapper | None:
    if settings.soft_limit is None:
        return None
    return AsgiWrapper(Stage.LIMIT, soft_limit(settings.soft_limit))
