"""``request_id_header`` (default ``X-Request-ID``): one id per request, at ``Stage.REQUEST_ID``.

The id is taken from the request only when a trusted proxy sent it (``trusted_proxies`` set:
the proxies edge has already removed the header from any other peer) and it is valid: 1 to
128 characters of ``A-Z a-z 0-9 . _ ~ : / + = @ -``. Otherwise it is generated: a random
prefix drawn once per serving process followed by a counter, 32 hex digits (as unique as
the 80 random bits of the prefix; cheaper than 16 fresh random bytes per request).

The id goes on the response (the same header), in the access log (field ``request_id``,
contributed through :func:`~aeros_core.hookspecs.aeros_access_log_fields`), and to views as
:func:`request_id` (a context variable set at the edge). ``request_id_header=None``: nothing
installed, no cost.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from ..hookspecs import hookimpl
from ..pipeline import ASGIApp, AsgiWrapper, Stage
from ..runner.settings import ServerSettings

MAX_LENGTH = 128
_VALID = re.compile(rb"[A-Za-z0-9._~:/+=@-]{1,%d}" % MAX_LENGTH)
_current: ContextVar[str | None] = ContextVar("aeros_request_id", default=None)


def request_id() -> str | None:
    """The id of the request being handled (None outside a request, or with ``request_id_header=None``)."""
    return _current.get()


def valid_request_id(value: bytes) -> bool:
    """Whether a request id received from a proxy may be used (bounded length, safe characters)."""
    return _VALID.fullmatch(value) is not None


def id_generator() -> Callable[[], str]:
    """Ids of this process: 20 random hex digits then a 12-digit hex counter."""
    prefix = int.from_bytes(os.urandom(10), "big") << 48
    count = itertools.count(1).__next__
    return lambda: "%032x" % (prefix | (count() & 0xFFFFFFFFFFFF))


def request_ids(settings: ServerSettings) -> Any:
    assert settings.request_id_header
    name = settings.request_id_header.lower().encode("latin-1")
    # Only when the proxies edge runs is a header that reached us known to come from a trusted proxy.
    take_from_request = bool(settings.trusted_proxies)

    def wrap(app: ASGIApp) -> ASGIApp:
        new_id = id_generator()
        current = _current
        valid = _VALID.fullmatch

        async def with_request_id(scope: dict[str, Any], receive: Any, send: Any) -> None:
            kind = scope["type"]
            if kind != "http" and kind != "websocket":
                return await app(scope, receive, send)
            value = None
            if take_from_request:
                for header, given in scope["headers"]:
                    if header == name:
                        if valid(given) is not None:
                            value = given.decode("ascii")
                        break
            if value is None:
                value = new_id()
            encoded = value.encode("ascii")
            token = current.set(value)

            def send_with_id(message: dict[str, Any]) -> Any:
                # A plain function returning the server's awaitable: no coroutine frame of ours per message.
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), (name, encoded)]
                return send(message)

            try:
                await app(scope, receive, send_with_id if kind == "http" else send)
            finally:
                current.reset(token)

        return with_request_id

    return wrap


@hookimpl
def aeros_asgi_wrapper(settings: ServerSettings) -> AsgiWrapper | None:
    if not settings.request_id_header:
        return None
    return AsgiWrapper(Stage.REQUEST_ID, request_ids(settings))


@hookimpl
def aeros_access_log_fields(settings: ServerSettings) -> Mapping[str, Callable[[dict[str, Any]], Any]] | None:
    if not settings.request_id_header:
        return None
    return {"request_id": lambda scope: _current.get()}


@hookimpl
def aeros_server_config(settings: ServerSettings) -> None:
    header = settings.request_id_header
    if header is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        raise ValueError(f"request_id_header: {header!r} is not a header name")
