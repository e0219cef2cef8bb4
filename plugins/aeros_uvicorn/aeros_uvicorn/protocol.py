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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aeros_core.builtins.connections import BODY, BUSY_RESPONSE, DRAIN_LINGER, Connection, ConnectionTable
from aeros_core.runner.coalesce import CoalescingTransport

DEFAULT_MAX_HEAD = 16 * 1024
LINGER_SECONDS = 2.0
_REJECT_BODY = b"431 Request Header Fields Too Large\n"


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
