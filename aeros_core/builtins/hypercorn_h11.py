"""Hypercorn's HTTP/1.1 protocol with its per-request Python cut down (Hypercorn backend).

:class:`AerosH11Protocol <aeros_h11_protocol>` is Hypercorn's ``H11Protocol`` (the protocol
:class:`~aeros_core.builtins.hypercorn_connection.aeros_tcp_server` gives each HTTP/1 connection)
with four methods overridden; what a client sees does not change:

* ``stream_send``: the response head is validated and normalised in one pass (h11's own header
  regexes, no ``groupdict``; a header pair that passed is not checked again, :data:`CHECKED`) and
  handed to h11 as its ``Headers``; h11 then frames and writes it as before. A head that is not the
  common case (a ``Transfer-Encoding``, several or odd ``Content-Length`` values, names or values
  not ``bytes``) takes h11's own path. Measured: h11's ``Response(...)`` 14 µs, this one ~3 µs.
* ``_send_h11_event``: an empty write (h11's end of a ``Content-Length`` body) is not sent.
* ``_check_protocol`` and ``_create_stream``: Hypercorn scans the request headers twice (decoding
  each name); a request without an ``Upgrade`` header and not ``PRI`` (HTTP/2 prior knowledge)
  needs neither scan: no h2c upgrade, no WebSocket. Such a request gets an ``AerosHTTPStream``
  directly; the others take Hypercorn's code.

``AerosHTTPStream`` is Hypercorn's ``HTTPStream`` whose ``app_send`` writes a response's last body
message and the end of the response in one write (``end_response``: h11's ``Data`` and
``EndOfMessage``), then does what Hypercorn's ``_send_closed`` does.

:func:`cached_response_headers` keeps Hypercorn's ``date``/``server`` headers for the current
second (the date has a one-second resolution: the same bytes, formatted once a second).

h11's private ``Headers`` and header regexes are used (docs/internals.md, "The list").
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from h11._headers import Headers, _field_name_re, _field_value_re

from .h11_connection import StrictH11Connection

#: h11's longest Content-Length (``CONTENT_LENGTH_MAX_DIGITS``)
MAX_LENGTH_DIGITS = 20
#: h11's own checks of a header name and value (the regexes its ``normalize_and_validate`` uses)
name_ok = _field_name_re.fullmatch
value_ok = _field_value_re.fullmatch
#: response header pairs that passed those checks -> the lower-cased name (the same bytes are
#: valid every time: a response's ``content-type``, ``date``, ``server``... are checked once)
CHECKED: dict[tuple[bytes, bytes], bytes] = {}
#: pairs kept at most (the dict is emptied when full), and the longest value kept
CHECKED_PAIRS = 512
CHECKED_VALUE_SIZE = 256


def response_event(headers: list[tuple[bytes, bytes]], status_code: int) -> Any:
    """``h11.Response(headers=headers, status_code=status_code)``, validated as h11 does but
    in one pass, each header pair checked once (:data:`CHECKED`); h11's own constructor for
    anything but the common case (it raises h11's error for an invalid header)."""
    full = []
    length_seen = False
    checked = CHECKED
    for pair in headers:
        lower = checked.get(pair)
        if lower is None:
            name, value = pair
            if type(name) is not bytes or type(value) is not bytes:
                return h11.Response(headers=headers, status_code=status_code)
            lower = name.lower()
            if lower == b"transfer-encoding":
                return h11.Response(headers=headers, status_code=status_code)
            if lower == b"content-length" and (not value.isdigit() or len(value) > MAX_LENGTH_DIGITS):
                return h11.Response(headers=headers, status_code=status_code)  # h11 decides
            if name_ok(name) is None or value_ok(value) is None:
                return h11.Response(headers=headers, status_code=status_code)  # raises h11's error
            if len(value) <= CHECKED_VALUE_SIZE:
                if len(checked) >= CHECKED_PAIRS:
                    checked.clear()
                checked[pair] = lower
        if lower == b"content-length":
            if length_seen:  # several: h11 decides (the same value twice is one)
                return h11.Response(headers=headers, status_code=status_code)
            length_seen = True
        full.append((pair[0], lower, pair[1]))
    return h11.Response(headers=Headers(full), status_code=status_code)


@functools.cache
def aeros_h11_protocol() -> type:
    """The ``H11Protocol`` subclass (built on first use: Hypercorn is imported lazily)."""
    from hypercorn.events import RawData
    from hypercorn.protocol.events import Body, EndBody, Request, Response, StreamClosed
    from hypercorn.protocol.h11 import STREAM_ID, H11Protocol
    from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
    from hypercorn.utils import suppress_body

    RESPONSE, CLOSED = ASGIHTTPState.RESPONSE, ASGIHTTPState.CLOSED

    class AerosHTTPStream(HTTPStream):
        """Hypercorn's ``HTTPStream``; the last body message of a response (the only one, for a body
        in memory) is written with the end of the response in one write."""

        end_response: Callable[[bytes], Awaitable[None]]

        async def app_send(self, message: Any) -> None:
            if (
                message is not None
                and message["type"] == "http.response.body"
                and self.state is RESPONSE
                and not message.get("more_body", False)
                and not self.response.get("trailers", False)
            ):
                body = message.get("body", b"")
                if suppress_body(self.scope["method"], int(self.response["status"])):
                    body = b""
                await self.end_response(bytes(body))
                self.state = CLOSED  # as Hypercorn's _send_closed, after its EndBody
                await self.config.log.access(self.scope, self.response, time.time() - self.start_time)
                await self.send(StreamClosed(stream_id=self.stream_id))
            else:
                await super().app_send(message)

    class AerosH11Protocol(H11Protocol):
        """Hypercorn's HTTP/1.1 protocol on a :class:`StrictH11Connection`, with the cheaper
        response head and request dispatch described in the module."""

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.connection = StrictH11Connection(self.config.h11_max_incomplete_size)
            self.upgrade = False  # the request being dispatched has an Upgrade header

        async def stream_send(self, event: Any) -> None:
            if type(event) is Response and event.status_code >= 200:
                headers = [*event.headers, *self.config.response_headers("h11")]
                if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                    headers.append((b"connection", b"close"))
                await self._send_h11_event(response_event(headers, event.status_code))
            elif type(event) is Body:
                await self._send_h11_event(h11.Data(data=event.data))
            elif type(event) is EndBody:
                await self._send_h11_event(h11.EndOfMessage())
            else:
                await super().stream_send(event)

        async def _send_h11_event(self, event: Any) -> None:
            try:
                data = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
            else:
                if data:
                    await self.send(RawData(data=data))

        async def end_response(self, body: bytes) -> None:
            """Hypercorn's ``Body`` (when ``body``) then ``EndBody``, written at once."""
            events = (h11.Data(data=body), h11.EndOfMessage()) if body else (h11.EndOfMessage(),)
            parts = []
            for event in events:
                try:
                    parts.append(self.connection.send(event))
                except h11.LocalProtocolError:
                    if self.connection.their_state != h11.ERROR:
                        raise
            data = b"".join(parts)
            if data:
                await self.send(RawData(data=data))

        async def _check_protocol(self, event: Any) -> None:
            upgrade = False
            for _, name, _ in event.headers._full_items:  # lower-case names, as h11 parsed them
                if name == b"upgrade":
                    upgrade = True
                    break
            self.upgrade = upgrade
            if upgrade or event.method == b"PRI":
                await super()._check_protocol(event)

        async def _create_stream(self, request: Any) -> None:
            if self.upgrade:  # maybe a WebSocket: Hypercorn's code
                return await super()._create_stream(request)
            stream = self.stream = AerosHTTPStream(
                self.app,
                self.config,
                self.context,
                self.task_group,
                self.ssl,
                self.client,
                self.server,
                self.stream_send,
                STREAM_ID,
            )
            stream.end_response = self.end_response
            if self.config.h11_pass_raw_headers:
                headers = request.headers.raw_items()
            else:
                headers = [(name, value) for _, name, value in request.headers._full_items]
            await self.stream.handle(
                Request(
                    stream_id=STREAM_ID,
                    headers=headers,
                    http_version=request.http_version.decode(),
                    method=request.method.decode("ascii").upper(),
                    raw_path=request.target,
                    state=self.connection_state,
                )
            )
            self.keep_alive_requests += 1
            await self.context.mark_request()

    return AerosH11Protocol


def cached_response_headers(config: Any) -> None:
    """Hypercorn's ``config.response_headers(protocol)``, computed once per second (the ``date``
    header's resolution) and copied for each response (callers append to it)."""
    compute = config.response_headers
    cache: dict[str, tuple[int, list[tuple[bytes, bytes]]]] = {}

    def response_headers(protocol: str) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        cached = cache.get(protocol)
        if cached is None or cached[0] != second:
            cached = cache[protocol] = (second, compute(protocol))
        return list(cached[1])

    config.response_headers = response_headers
