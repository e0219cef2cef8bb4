"""The seam between the runner and a server implementation."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .settings import ServerSettings


@runtime_checkable
class ServerBackend(Protocol):
    """Serves an ASGI app on sockets the runner created (see ``aeros_server_backend``)."""

    name: str

    async def serve(
        self,
        app: Callable[..., Awaitable[None]],
        settings: ServerSettings,
        sockets: list[socket.socket],
        shutdown_trigger: Callable[[], Awaitable[Any]],
    ) -> None:
        """Serve until ``shutdown_trigger()`` returns, then drain within ``settings.graceful_timeout``.

        Runs the ASGI lifespan (startup before accepting, shutdown at the end). The sockets are
        bound and listening, TLS not yet applied: wrap them when ``settings.tls``.
        """
        ...
