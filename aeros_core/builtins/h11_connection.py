"""h11's connection with two framing rules h11 leaves out, closing in the drain (Hypercorn backend).

* A request with both ``Content-Length`` and ``Transfer-Encoding`` is refused (400) and the
  connection closed: h11 reads such a body as chunked and keeps the connection open, so bytes
  after the chunked body would be taken for a second request (request smuggling; RFC 9112 §6.1
  says close).
* ``max_head_size`` holds whatever the read sizes: h11 bounds only a head that arrives in several
  reads (``max_incomplete_event_size``); a larger head in one read was accepted. A head over the
  limit is refused (431).

* Once the server stopped accepting (:meth:`StrictH11Connection.close_after_each_response`), a response carries
  ``Connection: close`` and h11 closes the connection after it (Hypercorn only closed it, so a
  client could write its next request on a connection about to close).

The checks cost a few comparisons per request: the head is measured only when the bytes received
since the previous head ended exceed the limit, and the headers are scanned only for a chunked body.
Two private h11 attributes are read (:func:`buffered`, :func:`chunked`; docs/internals.md).
"""

from __future__ import annotations

from typing import Any, cast

import h11
from h11 import Request
from h11._readers import ChunkedReader

CLOSE = (b"connection", b"close")


class StrictH11Connection(h11.Connection):
    """An ``h11.Connection`` (server side) that refuses ambiguous framing and oversized heads;
    after :meth:`close_after_each_response`, every response says ``Connection: close``."""

    def __init__(self, max_head_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_size)
        self.max_head_size = max_head_size
        #: bytes received since the last head ended (an upper bound of the next head's size)
        self.unparsed = 0

    def receive_data(self, data: bytes) -> None:
        self.unparsed += len(data)
        super().receive_data(data)

    def next_event(self) -> Any:
        event = super().next_event()
        if type(event) is Request:
            self.check(event)
        return event

    def check(self, request: h11.Request) -> None:
        if self.unparsed > self.max_head_size and head_size(request) > self.max_head_size:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        self.unparsed = len(self._receive_buffer)  # see buffered()
        if type(self._reader) is ChunkedReader and ambiguous_framing(request):  # see chunked()
            raise h11.RemoteProtocolError("Content-Length with Transfer-Encoding", error_status_hint=400)

    def close_after_each_response(self) -> None:
        """The server stopped accepting: from now on, responses carry ``Connection: close`` (h11
        then closes the connection after each). An instance attribute: until then, ``send`` is
        h11's own and costs nothing more."""
        self.send = self.send_closing  # type: ignore[method-assign, assignment]

    def send_closing(self, event: Any) -> bytes | None:
        if type(event) is h11.Response:
            event = h11.Response(
                status_code=event.status_code,
                headers=[*event.headers.raw_items(), CLOSE],
                http_version=event.http_version,
                reason=event.reason,
            )
        return cast("bytes | None", h11.Connection.send(self, event))


def buffered(connection: h11.Connection) -> int:
    """Bytes received and not yet parsed. h11's public ``trailing_data`` copies them (measured
    0.7 µs against 0.2 µs); its private ``_receive_buffer`` is read instead, checked by
    tests/test_framing.py::test_the_h11_internal_used_is_there (docs/internals.md, "The list")."""
    return len(connection._receive_buffer)


def chunked(connection: h11.Connection) -> bool:
    """The request being read has a chunked body. h11 has no public way to tell (``their_state`` is
    SEND_BODY after every request head); its private ``_reader`` is read instead, checked by the
    same test (scanning the headers of every request instead cost about 1.5 µs)."""
    return type(connection._reader) is ChunkedReader


def head_size(request: h11.Request) -> int:
    """Bytes of the request line and headers as sent (give or take optional whitespace)."""
    size = len(request.method) + len(request.target) + 12  # "M T HTTP/1.1\r\n" ... "\r\n"
    for name, value in request.headers.raw_items():
        size += len(name) + len(value) + 4
    return size


def ambiguous_framing(request: h11.Request) -> bool:
    names = {name for name, _ in request.headers}
    return b"content-length" in names and b"transfer-encoding" in names
