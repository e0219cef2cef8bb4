"""Serving one app in one event loop: the body of a worker, a thread, or a single process."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

from ..catalog import KNOWN_BACKENDS
from .backend import ServerBackend
from .lifecycle import Lifecycle, Phase
from .settings import ServerSettings
from .sockets import listen_if_bound, stop_accepting

log = logging.getLogger("aeros")


def backend_for(app: Any, name: str) -> ServerBackend:
    backend = app.plugin_manager.hook.aeros_server_backend(name=name)
    if backend is None:
        extra = KNOWN_BACKENDS.get(name)
        hint = f" (pip install 'aeros[{extra}]')" if extra else ""
        raise ValueError(f"no installed plugin provides the server backend {name!r}{hint}")
    return cast("ServerBackend", backend)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when uvloop is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs in ``loop`` (a backend may leave its lifespan task behind when the
    startup fails), let it finish, then close the loop, as ``asyncio.run`` does."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def announce_startup(
    app: Callable[..., Awaitable[None]], on_started: Callable[[], None]
) -> Callable[..., Awaitable[None]]:
    """Call ``on_started`` when the app reports its lifespan startup complete.

    A plain function returning the app's own awaitable: a request costs no coroutine of ours.
    """

    async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def watched_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                on_started()

        await app(scope, receive, watched_send)

    def announcing(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
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
    handing_over: Callable[[], bool] = lambda: False,
    wrap: Callable[[Any], Any] | None = None,
    private: list[socket.socket] | None = None,
) -> None:
    """Serve ``app`` on ``sockets`` with the configured backend until ``stop`` is set.

    Gives the server its own :class:`~aeros_core.runner.lifecycle.Lifecycle` (``settings.lifecycle``).
    A socket bound but not yet listening starts listening when the app's startup completes.
    When the stop comes, after ``drain_delay``, new handshakes are refused and the queued
    connections accepted before the backend closes the sockets
    (:func:`~aeros_core.runner.sockets.stop_accepting`); when ``handing_over()`` (the address
    keeps serving from other processes: a recycled worker, a SIGHUP restart) there is no delay,
    and only the ``private`` sockets (no other process serves them; default: all) are treated
    so. ``wrap``: applied to the ASGI entry (the worker's request counter for ``max_requests``).
    """
    lifecycle = Lifecycle()
    settings = replace(settings, lifecycle=lifecycle)
    backend = backend_for(app, settings.server)

    def started() -> None:
        for sock in sockets:
            listen_if_bound(sock, settings.backlog)
        lifecycle.advance(Phase.SERVING)
        on_started()

    async def shutdown_trigger() -> None:
        await stop.wait()
        lifecycle.advance(Phase.DRAINING)
        if handing_over():
            await stop_accepting(sockets if private is None else private)
        else:
            if settings.drain_delay:
                await asyncio.sleep(settings.drain_delay)  # the load balancer sees ready_path 503 meanwhile
            await stop_accepting(sockets)
        lifecycle.advance(Phase.CLOSING)

    entry = app.asgi_entry(settings)
    if wrap is not None:
        entry = wrap(entry)
    entry = announce_startup(entry, started)
    try:
        await backend.serve(entry, settings, sockets, shutdown_trigger)
    finally:
        lifecycle.advance(Phase.STOPPED)
