"""uvicorn's httptools protocol with a bound on the request head, writing once per response.

uvicorn's httptools protocol accepts request heads of any size; Hypercorn (and uvicorn's
h11 protocol) refuse heads beyond a limit. This subclass applies the runner's
``max_head_size`` (passed as ``h11_max_incomplete_event_size``) and answers 431.

It also writes through :class:`aeros_core.runner.coalesce.CoalescingTransport`: uvicorn
writes a response's head and body with two ``send()`` calls, this sends them with one.
"""

from __future__ import annotations

import asyncio

from typing import Any

from aeros_core.runner.coalesce import CoalescingTransport
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEAD = 16 * 1024
LINGER_SECONDS = 2.0
_REJECT_BODY = b"431 Request Header Fields Too Large\n"


class _HeadTooLarge(Exception):
    pass


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

    def connection_made(self, transport: Any) -> None:
        super().connection_made(CoalescingTransport(transport))  # type: ignore[arg-type]

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

    def on_headers_complete(self) -> None:
        self.head_open = False
        # The head came in the chunks counted so far plus this one: only when those could
        # exceed the limit is it worth measuring.
        if self.head_bytes + self.chunk_bytes > self.max_head and self._head_size() > self.max_head:
            self.head_too_large = True
            raise _HeadTooLarge()  # the parser stops; uvicorn answers through send_400_response
        super().on_headers_complete()

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
        # Lingering close: closing with unread request bytes in the kernel makes it send a
        # reset, and the client may lose the 431. Half-close, drop what still arrives, close soon.
        self.rejected = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
