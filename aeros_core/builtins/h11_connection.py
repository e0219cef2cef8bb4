"""h11's connection with the framing rules h11 leaves out, closing in the drain (Hypercorn backend).

* A request with both ``Content-Length`` and ``Transfer-Encoding`` is refused (400) and the
  connection closed: h11 reads such a body as chunked and keeps the connection open, so bytes
  after the chunked body would be taken for a second request (request smuggling; RFC 9112 §6.1
  says close).
* ``max_head_size`` holds whatever the read sizes: h11 bounds only a head that arrives in several
  reads (``max_incomplete_event_size``); a larger head in one read was accepted. A head over the
  limit is refused (431).
* A chunked body is framed as RFC 9112 §7.1 says, or refused (400) and the connection closed:
  h11 waits for ever for a chunk line that ends in a bare LF (``5\nhello\n``), reading the next
  request's bytes as body. :class:`ChunkedFraming` follows the body's framing across reads.

* Once the server stopped accepting (:meth:`StrictH11Connection.close_after_each_response`), a response carries
  ``Connection: close`` and h11 closes the connection after it (Hypercorn only closed it, so a
  client could write its next request on a connection about to close).

The checks cost a few comparisons per request: the head is measured only when the bytes received
since the previous head ended exceed the limit, and the headers are scanned only for a chunked body.
The chunked framing is followed only while a chunked body is read: ``receive_data`` is replaced on
the instance for that time, so a request without a chunked body costs nothing more.
Two private h11 attributes are read (:func:`buffered`, :func:`chunked`; docs/internals.md).
"""

from __future__ import annotations

import re
from typing import Any, cast

import h11
from h11 import SEND_BODY, SERVER, Data, Request
from h11._readers import ChunkedReader

CLOSE = (b"connection", b"close")

#: a chunk-size line: 1-16 hex digits (at most 2**64 - 1), optional whitespace (h11 allows it),
#: optional extensions, CRLF
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n\x00]*)?\r\n")
#: the longest chunk-size line accepted (extensions included)
MAX_CHUNK_LINE = 4096
SIZE, DATA, DATA_CR, DATA_LF, TRAILER, DONE = range(6)


class ChunkedFraming:
    """Follows a chunked body's framing (RFC 9112 §7.1) across reads: chunk-size lines, chunk
    data each followed by CRLF, a CRLF-terminated trailer section. :meth:`feed` takes the bytes
    as they come and raises ``h11.RemoteProtocolError`` (400) at the first framing error."""

    def __init__(self, max_trailer_size: int) -> None:
        self.state = SIZE
        self.line = bytearray()  # the size or trailer line being read
        self.remaining = 0  # bytes of chunk data still to come
        self.trailer_left = max_trailer_size

    def feed(self, data: bytes | bytearray) -> bool:
        """Whether the body is complete (the bytes after it, if any, are the next request's)."""
        position, end = 0, len(data)
        while position < end:
            state = self.state
            if state == DATA:
                if self.remaining > end - position:
                    self.remaining -= end - position
                    return False
                position += self.remaining
                if end - position >= 2:  # the CRLF after the chunk data, at once if it is there
                    if data[position : position + 2] != b"\r\n":
                        raise h11.RemoteProtocolError("chunk data not followed by CRLF", error_status_hint=400)
                    position += 2
                    self.state = SIZE
                else:
                    self.state = DATA_CR
            elif state == DATA_CR or state == DATA_LF:
                if data[position] != (13 if state == DATA_CR else 10):
                    raise h11.RemoteProtocolError("chunk data not followed by CRLF", error_status_hint=400)
                position += 1
                self.state = DATA_LF if state == DATA_CR else SIZE
            elif state == DONE:
                return True
            else:  # a line: the chunk size, or a trailer line
                newline = data.find(b"\n", position)
                if newline < 0:
                    self.line += data[position:]
                    self.check_line_length(len(self.line))
                    return False
                if self.line:
                    self.line += data[position : newline + 1]
                    line = bytes(self.line)
                    self.line.clear()
                else:
                    line = bytes(data[position : newline + 1])
                position = newline + 1
                self.check_line_length(len(line))
                self.line_complete(line)
        return self.state == DONE

    def check_line_length(self, length: int) -> None:
        if self.state == SIZE and length > MAX_CHUNK_LINE:
            raise h11.RemoteProtocolError("chunk-size line too long", error_status_hint=400)
        if self.state == TRAILER and length > self.trailer_left:
            raise h11.RemoteProtocolError("trailer section too large", error_status_hint=431)

    def line_complete(self, line: bytes) -> None:
        if self.state == SIZE:
            match = CHUNK_LINE.fullmatch(line)
            if match is None:
                raise h11.RemoteProtocolError(f"malformed chunk-size line {line[:40]!r}", error_status_hint=400)
            size = int(match[1], 16)
            self.remaining = size
            self.state = DATA if size else TRAILER
        else:
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                raise h11.RemoteProtocolError("trailer line not ended by CRLF", error_status_hint=400)
            self.trailer_left -= len(line)
            if line == b"\r\n":
                self.state = DONE


class StrictH11Connection(h11.Connection):
    """An ``h11.Connection`` (server side) that refuses ambiguous framing and oversized heads;
    after :meth:`close_after_each_response`, every response says ``Connection: close``."""

    def __init__(self, max_head_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_size)
        self.max_head_size = max_head_size
        #: bytes received since the last head ended (an upper bound of the next head's size)
        self.unparsed = 0
        self.framing = ChunkedFraming(max_head_size)  # replaced for each chunked body
        self.framing_error: h11.RemoteProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        self.unparsed += len(data)
        super().receive_data(data)

    def receive_chunked(self, data: bytes) -> None:
        """``receive_data`` while a chunked body is read (an instance attribute for that time)."""
        self.unparsed += len(data)
        h11.Connection.receive_data(self, data)
        try:
            if self.framing.feed(data):
                del self.receive_data  # the body is complete: h11's own again
        except h11.RemoteProtocolError as error:
            del self.receive_data
            self.framing_error = error
            self.next_event = self.refuse  # type: ignore[method-assign]

    def refuse(self) -> Any:
        """``next_event`` once the chunked framing failed: the error, as h11 raises its own."""
        assert self.framing_error is not None
        raise self.framing_error

    def next_event(self) -> Any:
        event = super().next_event()
        if type(event) is Request:
            self.check(event)
        return event

    def check(self, request: h11.Request) -> None:
        if self.unparsed > self.max_head_size and head_size(request) > self.max_head_size:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        self.unparsed = len(self._receive_buffer)  # see buffered()
        if type(self._reader) is ChunkedReader:  # see chunked()
            if ambiguous_framing(request):
                raise h11.RemoteProtocolError("Content-Length with Transfer-Encoding", error_status_hint=400)
            self.framing = ChunkedFraming(self.max_head_size)
            if not self.framing.feed(self.trailing_data[0]):  # raises before the app sees the request
                self.receive_data = self.receive_chunked  # type: ignore[method-assign]

    def send(self, event: Any) -> Any:
        """h11's ``send``; a body chunk of the response being sent goes straight to h11's body writer
        (h11's state machine leaves every state as it is for a server's ``Data`` in ``SEND_BODY``:
        its bookkeeping, ~1/5 of h11's work per request, is skipped, the bytes and checks are h11's)."""
        if type(event) is Data and self._cstate.states[SERVER] is SEND_BODY:
            parts: list[bytes] = []
            writer: Any = self._writer
            try:
                writer(event, parts.append)  # raises when the body exceeds Content-Length
            except BaseException:
                self._process_error(SERVER)
                raise
            return b"".join(parts)
        return super().send(event)

    def close_after_each_response(self) -> None:
        """The server stopped accepting: from now on, responses carry ``Connection: close`` (h11
        then closes the connection after each). An instance attribute: until then, ``send`` is
        h11's own and costs nothing more."""
        self.send = self.send_closing  # type: ignore[method-assign]

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
