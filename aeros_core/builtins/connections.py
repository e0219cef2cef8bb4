"""The connection rules every backend applies: a limit, a head deadline, a minimum body rate.

One :class:`ConnectionTable` per serving event loop (a worker, a thread server) holds the open
HTTP/1 connections. The backend's protocol reports each connection's transitions to its
:class:`Connection`; the table enforces, in one place:

* ``max_connections``: at the limit, a new connection first takes the place of the oldest
  connection that has no request in progress (idle, or still sending its head); only when every
  connection is busy with a request is the new one answered 503 and closed. A flood of idle or
  slow connections thus never locks normal clients out.
* ``header_timeout``: the whole request head must arrive within it, counted from the connection's
  start (a connection that sends nothing) or from the first byte of the head (after keep-alive).
  Idle keep-alive connections are the backend's (``keep_alive_timeout``).
* the body rate: once the head is in, the body must arrive at :data:`MIN_BODY_RATE` bytes/s or
  more, averaged over the time the server waited for it, after a grace period of
  ``header_timeout``. Time the server was not reading (the app had not consumed what came) does
  not count. A client trickling its body (1 byte every few seconds) is closed; a slow but real
  upload (a few hundred bytes/s and up) is not.

The checks run in one timer per table (every :func:`tick` seconds), not one per connection: the
request path only stores a phase and a timestamp. Shedding is logged at most once per
:data:`LOG_EVERY` seconds, with counts.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ..runner.logs import SERVER_LOGGER

#: bytes/s below which a request body is too slow (Kestrel's MinRequestBodyDataRate is 240)
MIN_BODY_RATE = 240.0
#: seconds between two log lines about shed connections
LOG_EVERY = 10.0
#: once accepting stopped, seconds an idle connection stays open, so that a request the client
#: wrote just before is read and answered (with Connection: close) rather than reset
DRAIN_LINGER = 0.1
#: loop turns at most spent accepting the connections already queued when accepting stops
ACCEPT_TURNS = 100

#: the response of a connection refused because every connection is busy with a request
BUSY_BODY = b"503 Service Unavailable: the server is at its limit of connections; retry shortly.\n"
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n\r\n%s" % (len(BUSY_BODY), BUSY_BODY)
)

# a connection's phases
IDLE = 0  #: between requests (keep-alive): the backend's keep_alive_timeout applies
HEAD = 1  #: waiting for (the rest of) a request head: header_timeout
BODY = 2  #: head in, body incomplete: the minimum body rate
BUSY = 3  #: request read, response not finished: no deadline here

REASONS = {
    "evicted": "idle or slow-head connections closed to make room (max_connections)",
    "refused": "connections refused with 503 (max_connections, all busy)",
    "head": "heads not complete within header_timeout",
    "body": f"bodies slower than {MIN_BODY_RATE:.0f} bytes/s",
}

log = logging.getLogger(SERVER_LOGGER)


def tick(header_timeout: float) -> float:
    """Seconds between two checks: a quarter of ``header_timeout``, between 0.05 and 1."""
    return max(0.05, min(1.0, header_timeout / 4))


class Connection:
    """One open connection, as the table sees it. ``close`` closes its transport."""

    __slots__ = ("table", "close", "phase", "deadline", "body_bytes", "body_since", "held_since")

    def __init__(self, table: ConnectionTable, close: Callable[[], None], now: float) -> None:
        self.table = table
        self.close = close
        self.phase = HEAD
        self.deadline = now + table.header_timeout
        self.body_bytes = 0
        self.body_since = 0.0
        self.held_since: float | None = None

    # --- transitions, reported by the backend ---------------------------------------------------

    def head_started(self) -> None:
        """The first byte of a request head after keep-alive."""
        if self.phase == IDLE:
            table = self.table
            self.phase = HEAD
            self.deadline = table.loop.time() + table.header_timeout

    def request_started(self, body: bool) -> None:
        """The head is complete; ``body``: a body is still to come."""
        table = self.table
        table.evictable.pop(self, None)
        if body:
            self.phase = BODY
            self.body_bytes = 0
            self.body_since = table.loop.time()
        else:
            self.phase = BUSY

    def body_received(self, size: int) -> None:
        self.body_bytes += size

    def body_complete(self) -> None:
        if self.phase == BODY:
            self.phase = BUSY

    def hold(self) -> None:
        """The server stopped reading (the app has not consumed the body yet)."""
        if self.held_since is None:
            self.held_since = self.table.loop.time()

    def release(self) -> None:
        """The server reads again: the time it did not read is not the client's."""
        held_since = self.held_since
        if held_since is not None:
            self.held_since = None
            self.body_since += self.table.loop.time() - held_since

    def idle(self) -> None:
        """The response is complete and the connection kept alive."""
        self.phase = IDLE
        self.table.evictable[self] = None

    def closed(self) -> None:
        """The transport is closed (``connection_lost``)."""
        table = self.table
        table.connections.pop(self, None)
        table.evictable.pop(self, None)


class ConnectionTable:
    """The open connections of one event loop and the rules above."""

    def __init__(self, max_connections: int, header_timeout: float, backend: str) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.backend = backend
        self.loop = asyncio.get_running_loop()
        self.connections: dict[Connection, None] = {}
        #: connections without a request in progress, oldest first
        self.evictable: dict[Connection, None] = {}
        self.shed: dict[str, int] = {}
        self.next_log = 0.0
        self.interval = tick(header_timeout)
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(self.interval, self.sweep)

    def open(self, close: Callable[[], None]) -> Connection | None:
        """A new connection: its :class:`Connection`, or ``None`` when it must be refused (the caller
        writes :data:`BUSY_RESPONSE` and closes it)."""
        connections = self.connections
        if len(connections) >= self.max_connections:
            if not self.evictable:
                self.count("refused")
                return None
            oldest = next(iter(self.evictable))
            oldest.closed()
            self.count("evicted")
            oldest.close()
        connection = Connection(self, close, self.loop.time())
        connections[connection] = None
        self.evictable[connection] = None
        return connection

    def sweep(self) -> None:
        now = self.loop.time()
        self.timer = self.loop.call_later(self.interval, self.sweep)
        grace = self.header_timeout
        expired: list[tuple[Connection, str]] = []
        for connection in self.connections:
            phase = connection.phase
            if phase == HEAD:
                if now >= connection.deadline:
                    expired.append((connection, "head"))
            elif phase == BODY and connection.held_since is None:
                waited = now - connection.body_since
                if waited >= grace and connection.body_bytes < MIN_BODY_RATE * waited:
                    expired.append((connection, "body"))
        for connection, reason in expired:
            connection.closed()
            self.count(reason)
            connection.close()
        if self.shed and now >= self.next_log:
            self.report(now)

    def count(self, reason: str) -> None:
        self.shed[reason] = self.shed.get(reason, 0) + 1
        now = self.loop.time()
        if now >= self.next_log:
            self.report(now)

    def report(self, now: float) -> None:
        counts = "; ".join(f"{n} {REASONS[reason]}" for reason, n in sorted(self.shed.items()))
        log.warning(
            "%s: shedding connections (%d open, max_connections=%d): %s",
            self.backend,
            len(self.connections),
            self.max_connections,
            counts,
        )
        self.shed = {}
        self.next_log = now + LOG_EVERY

    def close(self) -> None:
        """The server stopped: no more checks."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def accept_queued_then(
    shutdown_trigger: Callable[[], Awaitable[Any]], sockets: list[socket.socket]
) -> Callable[[], Awaitable[None]]:
    """``shutdown_trigger``, returning only once the connections already in the listen queues were
    accepted (by the server's own accept loop): closing a listening socket resets the connections
    still queued on it; accepted, they are served or closed gracefully."""

    async def trigger() -> None:
        await shutdown_trigger()
        for _ in range(ACCEPT_TURNS):
            try:
                readable, _, _ = select.select(sockets, [], [], 0)
            except (OSError, ValueError):  # a socket closed meanwhile
                return
            if not readable:
                return
            await asyncio.sleep(0)  # the loop's accept callback takes them

    return trigger
