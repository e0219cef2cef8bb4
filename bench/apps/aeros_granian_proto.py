"""A prototype granian backend for aeros (bench only; not a shipped plugin).

It answers the question "does granian fit the aeros runner?": granian's embedded server
(``granian.server.embed.Server``, marked experimental by granian) runs in the runner's event
loop, and ``granian._granian.SocketHolder(fd, uds, backlog)`` adopts the socket the runner
created, so forked workers, signals and the supervisor stay the runner's. It relies on two
private names (``SocketHolder`` and ``Server._init_shared_socket``), which is why it is a
prototype. Use: ``WebServer(__name__, plugins=[GranianPlugin()])`` then ``app.run(server="granian")``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, Awaitable, Callable

from aeros_core.hookspecs import hookimpl
from aeros_core.runner.settings import ServerSettings


class GranianBackend:
    name = "granian"

    async def serve(
        self,
        app: Callable[..., Awaitable[None]],
        settings: ServerSettings,
        sockets: list[socket.socket],
        shutdown_trigger: Callable[[], Awaitable[Any]],
    ) -> None:
        from granian._granian import SocketHolder
        from granian.constants import HTTPModes, Interfaces
        from granian.log import LogLevels
        from granian.server.embed import Server

        if len(sockets) != 1:
            raise ValueError("the granian backend serves exactly one socket")
        sock = sockets[0]
        options: dict[str, Any] = {
            "address": settings.host, "port": settings.port, "interface": Interfaces.ASGI,
            "http": HTTPModes.auto if settings.tls else HTTPModes.http1, "backlog": settings.backlog,
            "runtime_threads": 1, "log_level": LogLevels.warning, "log_access": False,
        }
        if settings.tls:
            options.update(ssl_cert=settings.certfile, ssl_key=settings.keyfile)
        options.update(settings.backend_options)
        server = Server(app, **options)
        server.workers_kill_timeout = settings.graceful_timeout  # how long stop() waits for the worker

        def adopt_runner_socket() -> None:  # instead of binding a socket of its own
            fd = os.dup(sock.fileno())  # the holder closes what it holds; the runner closes its own
            server._ssp = None
            server._shd = SocketHolder(fd, False, settings.backlog)
            server._sfd = fd

        server._init_shared_socket = adopt_runner_socket
        serving = asyncio.ensure_future(server.serve())
        stopping = asyncio.ensure_future(shutdown_trigger())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            server.stop()
        stopping.cancel()
        await serving


class GranianPlugin:
    @hookimpl
    def aeros_server_backend(self, name: str) -> GranianBackend | None:
        return GranianBackend() if name == "granian" else None
