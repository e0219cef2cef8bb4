"""Serving one app in one event loop: the body of a worker, a thread, or a single process."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from typing import Any, Awaitable, Callable

from ..catalog import KNOWN_BACKENDS
from .backend import ServerBackend
from .lifecycle import Lifecycle, Phase
from .settings import ServerSettings

log = logging.getLogger("aeros")


def backend_for(app: Any, name: str) -> ServerBackend:
    backend = app.plugin_manager.hook.aeros_server_backend(name=name)
    if backend is None:
        extra = KNOWN_BACKENDS.get(name)
        hint = f" (pip install 'aeros[{extra}]')" if extra else ""
        raise ValueError(f"no installed plugin provides the server backend {name!r}{hint}")
    return backend


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when uvloop is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def announce_startup(
    app: Callable[..., Awaitable[None]], on_started: Callable[[], None]
) -> Callable[..., Awaitable[None]]:
    """Call ``on_started`` when the app reports its lifespan startup complete.

    A plain function returning the app's own awaitable: a request costs no coroutine of ours.
    """

    async def lifespan(scope: dict, receive: Any, send: Any) -> None:
        async def watched_send(message: dict) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                on_started()

        await app(scope, receive, watched_send)

    def announcing(scope: dict, receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] != "lifespan":
            return app(scope, receive, send)
        return lifespan(scope, receive, send)

    return announcing


async def serve(
    app: Any,
    settings: ServerSettings,
    sockets: list[socket.socket],
    stop: asyncio.Event,
    on_started: Callable[[], None] = lambda: None,
) -> None:
    """Serve ``app`` on ``sockets`` with the configured backend until ``stop`` is set.

    Gives the server its own :class:`~aeros_core.runner.lifecycle.Lifecycle` (``settings.lifecycle``).
    """
    lifecycle = Lifecycle()
    settings = replace(settings, lifecycle=lifecycle)
    backend = backend_for(app, settings.server)

    def started() -> None:
        lifecycle.advance(Phase.SERVING)
        on_started()

    async def shutdown_trigger() -> None:
        await stop.wait()
        lifecycle.advance(Phase.DRAINING)
        if settings.drain_delay:
            await asyncio.sleep(settings.drain_delay)  # the load balancer sees ready_path 503 meanwhile
        lifecycle.advance(Phase.CLOSING)

    entry = announce_startup(app.asgi_entry(settings), started)
    try:
        await backend.serve(entry, settings, sockets, shutdown_trigger)
    finally:
        lifecycle.advance(Phase.STOPPED)
