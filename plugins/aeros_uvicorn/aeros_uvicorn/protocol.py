"""uvicorn's httptools protocol with a bound on the request head, writing once per response,
applying the connection rules of :mod:`aeros_core.builtins.connections`.

uvicorn's httptools protocol accepts request heads of any size; Hypercorn (and uvicorn's
h11 protocol) refuse heads beyond a limit. This subclass applies the runner's
``max_head_size`` (passed as ``h11_max_incomplete_event_size``) and answers 431.

It reports each connection's phases to the worker's
:class:`~aeros_core.builtins.connections.ConnectionTable` (``max_connections``, ``header_timeout``,
the minimum body rate), closes the connection when a response ends before its request's body was
read (uvicorn would read and drop the rest, however large), and writes through :class:`aeros_core.runner.coalesce.CoalescingTransport`: uvicorn
writes a response's head and body with two ``send()`` calls, this sends them with one.

Each request's cycle is an :class:`AerosCycle`: uvicorn's ``RequestResponseCycle`` whose ``send``
writes the same bytes and raises the same errors, but remembers the header pairs that passed
uvicorn's checks instead of running two regular expressions and ``lower()`` on every pair of
every response.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from aeros_core.builtins.connections import BODY, BUSY_RESPONSE, DRAIN_LINGER, Connection, ConnectionTable
from aeros_core.runner.coalesce import CoalescingTransport

DEFAULT_MAX_HEAD = 16 * 1024
LINGER_SECONDS = 2.0
_REJECT_BODY = b"431 Request Header Fields Too Large\n"


#: header pairs remembered (and, apart, header names): beyond, the table starts again empty
MAX_REMEMBERED = 4096
#: pairs remembered per name (until the tables start again): a value that changes with each
#: response (a request id) is checked each time rather than filling the table
MAX_VALUES_PER_NAME = 64
#: longer lines (and names) are checked each time, never remembered: bounds the tables' memory
#: (a few MB at most)
MAX_REMEMBERED_LENGTH = 256
#: names whose values change how uvicorn frames the response: never remembered
_FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding", b"connection"})

#: ``(name, value)`` -> ``b"name: value\r\n"`` (name lower-cased), for pairs that passed uvicorn's checks
_lines: dict[tuple[bytes, bytes], bytes] = {}
#: ``name`` -> ``[b"name: " (lower-cased), pairs it may still add to _lines]``, for names that
#: passed uvicorn's check
_names: dict[bytes, list[Any]] = {}
#: uvicorn's default headers (``server_state.default_headers``, a new list each second) and their
#: lines, or None when one of them is refused or frames the response (uvicorn's own ``send`` then)
_defaults: tuple[object, bytes | None] = (None, None)


def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The lines of uvicorn's default headers, checked as uvicorn checks them; None if one fails
    or is one of :data:`_FRAMING_NAMES`."""
    global _defaults
    lines: bytes | None
    try:
        content = []
        for name, value in headers:
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value) or name.lower() in _FRAMING_NAMES:
                raise ValueError(name)
            content.extend([name.lower(), b": ", value, b"\r\n"])
        lines = b"".join(content)
    except Exception:  # uvicorn's send raises it again, or frames the response with it
        lines = None
    _defaults = (headers, lines)  # one tuple: the list (kept alive, so never another's id) and its lines
    return lines


#: the attributes uvicorn's ``RequestResponseCycle.__init__`` sets, in its order (a test checks them)
CYCLE_ATTRIBUTES = (
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "on_response",
    "disconnected",
    "keep_alive",
    "waiting_for_100_continue",
    "body",
    "more_body",
    "response_started",
    "response_complete",
    "chunked_encoding",
    "expected_content_length",
)


class AerosCycle(RequestResponseCycle):
    """uvicorn's request-response cycle; ``send`` remembers the header pairs it already checked.

    The bytes written and the errors raised are uvicorn's: a pair not remembered goes through
    uvicorn's checks (``HEADER_RE``, ``HEADER_VALUE_RE``) and framing rules (``content-length``,
    ``transfer-encoding``, ``connection``), and only an ordinary pair that passed them (both
    ``bytes``) is remembered. A name that passed is remembered too: a new value for it is then
    checked with ``HEADER_VALUE_RE`` alone (or ``isalnum()``: letters and digits only), and at
    most :data:`MAX_VALUES_PER_NAME` of its pairs are remembered (a request id is new each time).
    ``content-length`` of ASCII digits is read without the regular expressions. The body messages,
    the access log, a paused write, a disconnected client and a message out of order take uvicorn's
    own code.
    """

    connection_close = False  # the app sent ``connection: close``

    async def send(self, message: Any) -> None:
        if self.flow.write_paused or self.disconnected:
            return await super().send(message)
        if self.response_started:  # the body: uvicorn's own code
            return await super().send(message)
        if self.access_log:
            return await super().send(message)
        if message["type"] != "http.response.start":
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
        defaults = self.default_headers
        known = _defaults
        default_lines = known[1] if known[0] is defaults else _default_lines(defaults)
        if default_lines is None:
            return await super().send(message)

        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        headers = message.get("headers", [])
        if type(headers) is not list:
            headers = list(headers)  # as uvicorn: before anything else can fail
        content = [STATUS_LINE[status_code], default_lines]
        append = content.append
        remembered = _lines.get
        for name, value in headers:
            try:
                line = remembered((name, value))
            except TypeError:  # unhashable (a bytearray): checked below
                line = None
            # exactly bytes: a memoryview equals its bytes, and uvicorn's name.lower() refuses it
            if line is not None and type(name) is bytes is type(value):
                append(line)
            else:
                append(self._line(name, value))

        if not self.keep_alive and not self.connection_close:
            append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            self.chunked_encoding = True
            append(b"transfer-encoding: chunked\r\n")
        append(b"\r\n")
        self.transport.write(b"".join(content))

    def _line(self, name: Any, value: Any) -> bytes:
        """The line of a pair not remembered: uvicorn's checks and framing rules."""
        if type(name) is bytes:
            if name == b"content-length" and self.chunked_encoding is None and type(value) is bytes and value.isdigit():
                self.expected_content_length = int(value)  # ASCII digits: what int(value.decode()) reads
                self.chunked_encoding = False
                return b"content-length: " + value + b"\r\n"
            known = _names.get(name)
            if known is not None:  # a name that passed: only the value is new
                if not (type(value) is bytes and value.isalnum()) and HEADER_VALUE_RE.search(value):
                    raise RuntimeError("Invalid HTTP header value.")
                line: bytes = known[0] + value + b"\r\n"
                if known[1] and type(value) is bytes:
                    known[1] -= 1
                    _remember(name, value, line)
                return line
        return self._checked_line(name, value)

    def _checked_line(self, name: Any, value: Any) -> bytes:
        """uvicorn's checks and framing rules for one pair; an ordinary pair of ``bytes`` is remembered."""
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        lowered = name.lower()
        if lowered == b"content-length":
            if self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
        elif lowered == b"transfer-encoding":
            if value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
        elif lowered == b"connection":
            connection = [token.lower().strip() for token in value.split(b",")]
            if b"close" in connection:
                self.keep_alive = False
                self.connection_close = True
        elif type(name) is bytes:
            prefix = lowered + b": "
            if len(name) <= MAX_REMEMBERED_LENGTH:
                if len(_names) >= MAX_REMEMBERED:
                    _names.clear()
                _names[name] = [prefix, MAX_VALUES_PER_NAME - 1]
            line: bytes = prefix + value + b"\r\n"
            if type(value) is bytes:
                _remember(name, value, line)
            return line
        return b"".join([lowered, b": ", value, b"\r\n"])


def _remember(name: bytes, value: bytes, line: bytes) -> None:
    if len(line) > MAX_REMEMBERED_LENGTH:
        return
    if len(_lines) >= MAX_REMEMBERED:
        _lines.clear()
        _names.clear()  # and the names' budgets
    _lines[(name, value)] = line


class _HeadTooLarge(Exception):
    pass


class _ReportingFlow(FlowControl):
    """uvicorn's flow control, telling the connection table when reading stops and resumes."""

    def __init__(self, transport: Any, connection: Connection) -> None:
        super().__init__(transport)
        self.connection = connection

    def pause_reading(self) -> None:
        super().pause_reading()
        self.connection.hold()

    def resume_reading(self) -> None:
        if self.read_paused:  # asked after every response: nothing to do unless reading was paused
            super().resume_reading()
            self.connection.release()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Answers 431 and closes when the request line and headers exceed the limit."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_head = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD
        self.head_open = False  # between the start of a request and the end of its headers
        self.head_bytes = 0
        self.chunk_bytes = 0  # size of the chunk being parsed
        self.head_too_large = False
        self.rejected = False  # answered 431: what the client still sends is read and dropped
        self.connection: Connection | None = None
        self.draining = False  # the server stopped accepting: every response closes its connection

    def connection_made(self, transport: Any) -> None:
        table: ConnectionTable = self.config.aeros_connections  # type: ignore[attr-defined]  # set by UvicornBackend.serve
        connection = table.open(transport.abort)
        super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]
        if connection is None:  # over max_connections with every connection busy
            self.rejected = True
            self.transport.write(BUSY_RESPONSE)
            self.transport.close()
            return
        self.connection = connection
        self.flow = _ReportingFlow(self.transport, connection)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.closed()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the transport (and its connection_lost): the table forgets
        # the connection now, or it would count it forever.
        if self.connection is not None:
            self.connection.closed()
            self.connection = None
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        if self.rejected:
            return
        self.chunk_bytes = len(data)
        super().data_received(data)
        # Bytes of a head still incomplete after this chunk: bounds what the parser buffers.
        if self.head_open and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head:
                self.head_too_large = True
                self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_open = True
        self.head_bytes = 0
        self.connection.head_started()  # type: ignore[union-attr]  # set unless rejected

    def on_body(self, body: bytes) -> None:
        self.connection.body_received(len(body))  # type: ignore[union-attr]
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.connection.body_complete()  # type: ignore[union-attr]
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn builds its own RequestResponseCycle (by its module's name), and starts it here
        # (a pipelined one later, from on_response_complete): the task gets an AerosCycle with
        # the same attributes (CYCLE_ATTRIBUTES, each copied by name) instead. Measured in
        # instructions per request (bench/server_instructions.py): ``cycle.__class__ = AerosCycle``
        # makes CPython move the object's attributes into a dict, and each later read of one
        # costs more; copying through ``cycle.__dict__`` does the same to the old object; both
        # gave back about half of what AerosCycle saves.
        if type(cycle) is RequestResponseCycle:
            ours = AerosCycle.__new__(AerosCycle)
            ours.scope = cycle.scope
            ours.transport = cycle.transport
            ours.flow = cycle.flow
            ours.logger = cycle.logger
            ours.access_logger = cycle.access_logger
            ours.access_log = cycle.access_log
            ours.default_headers = cycle.default_headers
            ours.message_event = cycle.message_event
            ours.on_response = cycle.on_response
            ours.disconnected = cycle.disconnected
            ours.keep_alive = cycle.keep_alive
            ours.waiting_for_100_continue = cycle.waiting_for_100_continue
            ours.body = cycle.body
            ours.more_body = cycle.more_body
            ours.response_started = cycle.response_started
            ours.response_complete = cycle.response_complete
            ours.chunked_encoding = cycle.chunked_encoding
            ours.expected_content_length = cycle.expected_content_length
            if self.cycle is cycle:
                self.cycle = ours
            cycle = ours
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        connection = self.connection
        if connection is not None and connection.phase == BODY:
            # Answered before its body was read (413, 401...): reading the rest to find the next
            # request would cost what the client chooses; close instead.
            self.cycle.keep_alive = False
            self.linger_close()
            return
        super().on_response_complete()
        if connection is not None and not self.pipeline and not self.transport.is_closing():
            connection.idle()

    def on_headers_complete(self) -> None:
        self.head_open = False
        # The head came in the chunks counted so far plus this one: only when those could
        # exceed the limit is it worth measuring.
        if self.head_bytes + self.chunk_bytes > self.max_head and self._head_size() > self.max_head:
            self.head_too_large = True
            raise _HeadTooLarge()  # the parser stops; uvicorn answers through send_400_response
        self.connection.request_started(body=True)  # type: ignore[union-attr]  # on_message_complete ends it
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        """The server stopped accepting: an idle connection is closed after :data:`DRAIN_LINGER`
        (a request already written is still read, and answered with ``Connection: close``)."""
        self.draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(DRAIN_LINGER, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            if not self.transport.is_closing():
                self.transport.close()
        else:
            self.cycle.keep_alive = False

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def send_400_response(self, msg: str) -> None:
        if not self.head_too_large:
            return super().send_400_response(msg)
        self.logger.warning("Request head larger than %d bytes refused.", self.max_head)
        content = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(_REJECT_BODY)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                _REJECT_BODY,
            ]
        )
        self.transport.write(b"".join(content))
        self.linger_close()

    def linger_close(self) -> None:
        """Lingering close: closing with unread request bytes in the kernel makes it send a reset,
        and the client may lose the response. Half-close, drop what still arrives, close soon."""
        self.rejected = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
