"""h11's connection with two framing rules h11 leaves out, closing in the drain (Hypercorn backend).

* A request with both ``Content-Length`` and ``Transfer-Encoding`` is refused (400) and the
  connection closed: h11 reads such a body as chunked and keeps the connection open, so bytes
  after the chunked body would be taken for a second request (request smuggling; RFC 9112 §6.1
  says close).
* ``max_head_size`` holds whatever the read sizes: h11 bounds only a head that arrives in several
  reads (``max_incomplete_event_size``); a larger head in one read was accepted. A head over the
  limit is refused (431).

* Once the server is closing (``closing`` set: accepting stopped), a response carries
  ``Connection: close`` and h11 closes the connection after it (Hypercorn only closed it, so a
  client could write its next request on a connection about to close).

The checks cost a comparison per request: the head is measured only when the bytes received since
the previous head ended exceed the limit, and the headers are scanned only when a body follows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11


CLOSE = (b"connection", b"close")


class StrictH11Connection(h11.Connection):
    """An ``h11.Connection`` (server side) that refuses ambiguous framing and oversized heads, and
    says ``Connection: close`` once ``closing`` is set."""

    def __init__(self, max_head_size: int, closing: asyncio.Event) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_size)
        self.max_head_size = max_head_size
        self.closing = closing
        #: bytes received since the last head ended (an upper bound of the next head's size)
        self.unparsed = 0

    def receive_data(self, data: bytes) -> None:
        self.unparsed += len(data)
        super().receive_data(data)

    def next_event(self) -> Any:
        event = super().next_event()
        if type(event) is h11.Request:
            if self.unparsed > self.max_head_size and head_size(event) > self.max_head_size:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            self.unparsed = len(self.trailing_data[0])
            if self.their_state is h11.SEND_BODY and ambiguous_framing(event):
                raise h11.RemoteProtocolError("Content-Length with Transfer-Encoding", error_status_hint=400)
        return event

    def send(self, event: Any) -> bytes | None:
        if type(event) is h11.Response and self.closing.is_set():
            event = h11.Response(
                status_code=event.status_code,
                headers=[*event.headers.raw_items(), CLOSE],
                http_version=event.http_version,
                reason=event.reason,
            )
        return super().send(event)


def head_size(request: h11.Request) -> int:
    """Bytes of the request line and headers as sent (give or take optional whitespace)."""
    size = len(request.method) + len(request.target) + 12  # "M T HTTP/1.1\r\n" ... "\r\n"
    for name, value in request.headers.raw_items():
        size += len(name) + len(value) + 4
    return size


def ambiguous_framing(request: h11.Request) -> bool:
    names = {name for name, _ in request.headers}
    return b"content-length" in names and b"transfer-encoding" in names
