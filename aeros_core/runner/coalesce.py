"""One ``send()`` per response: small writes wait for the end of the event-loop turn.

Hypercorn and uvicorn write each piece of a response as the app sends it: the status line
and headers, then the body, each a ``send()`` system call. On loopback and on virtual
machines a ``send()`` that wakes the reader costs more than the Python that produced the
bytes, so a small response pays for two. :class:`CoalescingTransport` holds small writes
and sends them together once the current turn of the event loop ends (``call_soon``), or
at once when the held bytes reach :data:`FLUSH_AT`, or before the transport closes.

What a client sees does not change: the same bytes, in the same order, on the same
connection. Backpressure still works: the held bytes are bounded, and the real transport
pauses the protocol as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: held bytes beyond which a write goes out at once
FLUSH_AT = 64 * 1024


class CoalescingTransport:
    """Wraps an asyncio transport; every other attribute is the wrapped transport's."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.held: list[bytes] = []
        self.held_size = 0
        self.flush_scheduled = False
        #: set when a deferred write found the connection gone (the next write raises it)
        self.failure: BaseException | None = None
        self.loop = asyncio.get_running_loop()
        # asked on every request (uvicorn's protocol, twice): the transport's own method, not a
        # trip through __getattr__
        self.is_closing = transport.is_closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        failure = self.failure
        if failure is not None:
            self.failure = None
            raise failure
        if not data:
            return
        self.held.append(bytes(data))
        self.held_size += len(data)
        if self.held_size >= FLUSH_AT:
            self.flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush_later)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now (one write)."""
        held = self.held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        self.held = []
        self.held_size = 0
        self.transport.write(data)

    def _flush_later(self) -> None:
        self.flush_scheduled = False
        try:
            self.flush()
        except (ConnectionError, RuntimeError) as error:  # the connection went away meanwhile
            self.failure = error

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        try:
            self.flush()
        except (ConnectionError, RuntimeError):
            pass
        self.transport.close()

    def abort(self) -> None:
        self.held = []
        self.held_size = 0
        self.transport.abort()

    def get_write_buffer_size(self) -> int:
        return int(self.transport.get_write_buffer_size()) + self.held_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
