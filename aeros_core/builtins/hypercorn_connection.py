"""Hypercorn's connection handler with two per-request costs taken out.

Hypercorn's ``TCPServer`` handles one connection. Per request it

* writes each piece of a response as it comes (the head, then the body: two ``send()``
  calls for a small response), and
* stops its keep-alive "idle task" when a request starts and starts a new one when the
  response is done (a task cancelled and awaited, then a task created with a ``wait_for``).

:class:`AerosTCPServer` writes through :class:`~aeros_core.runner.coalesce.CoalescingTransport`
(one ``send()`` per loop turn) and keeps the keep-alive deadline as a timer (``call_later``),
with one task per connection that closes it, when idle, as soon as the server shuts down. Each HTTP/1 connection is served by
:func:`~aeros_core.builtins.hypercorn_h11.aeros_h11_protocol`'s ``H11Protocol`` (a cheaper
response path) on a :class:`~aeros_core.builtins.h11_connection.StrictH11Connection`.
What a client sees is Hypercorn's: the same bytes, the same keep-alive timeout, idle
connections closed at shutdown.

:func:`aeros_worker_serve` is Hypercorn's ``worker_serve`` using this class: a copy of the
function object whose globals name it ``TCPServer``. Hypercorn's module is not patched. A Hypercorn
whose ``worker_serve`` does not look ``TCPServer`` up is refused at start (no silent fallback:
the connection rules depend on this class).
"""

from __future__ import annotations

import asyncio
import functools
import types
from collections.abc import Awaitable, Callable
from ssl import SSLError
from typing import Any

from ..runner.coalesce import CoalescingTransport
from .connections import BODY, BUSY_RESPONSE, DRAIN_LINGER, IDLE, Connection, ConnectionTable
from .h11_connection import StrictH11Connection
from .hypercorn_h11 import aeros_h11_protocol

#: bytes read at most per ``read()`` (Hypercorn's own value)
MAX_RECV = 2**16


class _IdleTimer:
    """Stands in for Hypercorn's ``AsyncioSingleTask`` idle task of one connection.

    ``restart`` arms the keep-alive deadline, ``stop`` disarms it; when it passes, or the
    server terminates while the connection is idle, the connection is closed as Hypercorn's
    idle task closes it.
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self.timer: asyncio.TimerHandle | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[None] | None = None

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        self.arm()

    def arm(self) -> None:
        """``restart`` without a coroutine (the connection's own calls)."""
        self.disarm()
        server = self.server
        if self.closing is not None:
            return
        if server.context.terminated.is_set():  # accepted in the drain: a request may be on its way
            self.timer = server.loop.call_later(DRAIN_LINGER, self.expire)
            return
        self.timer = server.loop.call_later(server.config.keep_alive_timeout, self.expire)
        if self.watcher is None:
            self.watcher = server.loop.create_task(self.close_on_termination())

    async def stop(self) -> None:
        self.disarm()

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def expire(self) -> None:
        self.timer = None
        if self.closing is None:
            self.closing = self.server.loop.create_task(self.server._initiate_server_close())

    async def close_on_termination(self) -> None:
        await self.server.config.aeros_closing.wait()  # accepting stops
        self.server.close_after_each_response()
        await self.server.context.terminated.wait()
        if self.timer is not None:  # idle: close soon (a request already written is still read)
            self.disarm()
            self.timer = self.server.loop.call_later(DRAIN_LINGER, self.expire)

    def end(self) -> None:
        """The connection is closed: nothing of ours may outlive it."""
        self.disarm()
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None


@functools.cache
def aeros_tcp_server() -> type:
    """The ``TCPServer`` subclass (built on first use: Hypercorn is imported lazily)."""
    from h11 import SEND_BODY
    from hypercorn.asyncio.tcp_server import TCPServer
    from hypercorn.events import Closed, Event, RawData, Updated
    from hypercorn.protocol.h11 import H11Protocol

    h11_protocol = aeros_h11_protocol()

    class AerosTCPServer(TCPServer):
        """Hypercorn's connection handler: one write per loop turn, the idle deadline as a timer,
        the connection rules of :mod:`aeros_core.builtins.connections`."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            transport = self.writer.transport
            self.coalescer = CoalescingTransport(transport)
            #: at or below this many buffered bytes the transport is not paused (asyncio resumes
            #: writing when its buffer drains to the low-water mark)
            try:
                self.low_water: int = transport.get_write_buffer_limits()[0]
            except (NotImplementedError, AttributeError):  # a transport that does not tell: always drain()
                self.low_water = -1
            self.idle_task: _IdleTimer = _IdleTimer(self)  # type: ignore[assignment]  # same restart/stop
            table: ConnectionTable = self.config.aeros_connections  # type: ignore[attr-defined]  # set by HypercornBackend.serve
            self.connection: Connection | None = table.open(transport.abort)

        async def run(self) -> None:
            gate = getattr(self.config, "aeros_proxy_gate", None)
            if gate is not None:  # proxy_protocol=True: the PROXY header comes before HTTP
                writer = await gate(self.reader, self.writer)
                if writer is None:
                    return self.idle_task.end()
                self.writer = writer
            await super().run()

        async def protocol_send(self, event: Event) -> None:
            kind = type(event)
            if kind is RawData:
                transport = self.coalescer.transport
                if (
                    not self.send_lock.locked()
                    and not transport.is_closing()
                    and transport.get_write_buffer_size() <= self.low_water
                ):  # nobody waits to write and writing is not paused: drain() would return at once
                    try:
                        self.coalescer.write(event.data)  # type: ignore[attr-defined]  # a RawData
                    except (ConnectionError, RuntimeError):
                        await self.protocol.handle(Closed())
                    return
                async with self.send_lock:
                    try:
                        self.coalescer.write(event.data)  # type: ignore[attr-defined]  # a RawData
                        await self.writer.drain()
                    except (ConnectionError, RuntimeError):
                        await self.protocol.handle(Closed())
            elif kind is Updated:  # Hypercorn's handling (idle_task restart/stop), without the dispatch
                connection = self.connection
                if event.idle:  # type: ignore[attr-defined]  # an Updated
                    if connection is not None:
                        connection.idle()
                    self.idle_task.arm()
                else:
                    if connection is not None:
                        connection.request_started(body=self._body_pending())
                    self.idle_task.disarm()
            else:
                await super().protocol_send(event)

        def _body_pending(self) -> bool:
            """The request whose head just arrived has a body still to come (HTTP/1 only)."""
            return getattr(getattr(self.protocol.protocol, "connection", None), "their_state", None) is SEND_BODY

        def close_after_each_response(self) -> None:
            connection = getattr(self.protocol.protocol, "connection", None)
            if isinstance(connection, StrictH11Connection):
                connection.close_after_each_response()

        async def _read_data(self) -> None:
            connection = self.connection
            if connection is None:  # over max_connections with every connection busy
                self.coalescer.write(BUSY_RESPONSE)
                return
            wrapper = self.protocol
            if type(wrapper.protocol) is H11Protocol:  # HTTP/1 (not h2 by ALPN)
                inner = wrapper.protocol = h11_protocol(
                    wrapper.app,
                    wrapper.config,
                    wrapper.context,
                    wrapper.task_group,
                    wrapper.state,
                    wrapper.ssl,
                    wrapper.client,
                    wrapper.server,
                    wrapper.send,
                )
                if self.config.aeros_closing.is_set():  # type: ignore[attr-defined]  # accepted in the drain
                    inner.connection.close_after_each_response()
            reader = self.reader
            timeout = self.config.read_timeout
            while not reader.at_eof():
                try:
                    if timeout is None:
                        data = await reader.read(MAX_RECV)
                    else:
                        data = await asyncio.wait_for(reader.read(MAX_RECV), timeout)
                except (ConnectionError, OSError, asyncio.TimeoutError, TimeoutError, SSLError):
                    break
                phase = connection.phase
                if phase == IDLE:
                    connection.head_started()
                elif phase == BODY:
                    connection.body_received(len(data))
                    connection.hold()  # the app's queue may make us wait: not the client's time
                await self.protocol.handle(RawData(data))
                if connection.phase == BODY:
                    connection.release()
                    if not self._body_pending():
                        connection.body_complete()
            await self.protocol.handle(Closed())

        async def _close(self) -> None:
            try:
                self.coalescer.flush()
            except (ConnectionError, RuntimeError):
                pass
            try:
                await super()._close()
            finally:
                self.idle_task.end()
                if self.connection is not None:
                    self.connection.closed()

    return AerosTCPServer


@functools.cache
def aeros_worker_serve() -> Callable[..., Awaitable[None]]:
    """Hypercorn's ``worker_serve``, serving each connection with :func:`aeros_tcp_server`'s class."""
    from hypercorn.asyncio import run as hypercorn_run

    original = hypercorn_run.worker_serve
    if "TCPServer" not in original.__globals__:  # a Hypercorn that no longer looks it up there
        from importlib.metadata import version

        raise RuntimeError(
            f"the hypercorn backend cannot apply max_connections, header_timeout, the body rate and the "
            f"framing checks with Hypercorn {version('hypercorn')}: its worker_serve no longer "
            f"looks TCPServer up (see docs/internals.md, 'Backends'); install a Hypercorn 0.17-0.18"
        )
    globals_ = dict(original.__globals__, TCPServer=aeros_tcp_server())
    copy = types.FunctionType(
        original.__code__, globals_, original.__name__, original.__defaults__, original.__closure__
    )
    copy.__kwdefaults__ = original.__kwdefaults__
    return copy
