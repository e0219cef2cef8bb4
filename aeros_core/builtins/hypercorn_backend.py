"""The default server backend: Hypercorn, started in-process on the runner's sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ..hookspecs import hookimpl
from ..proxy_protocol import stream_gate
from ..runner.fdlimit import max_connections
from ..runner.logs import SERVER_LOGGER
from ..runner.settings import ServerSettings
from .connections import ConnectionTable, accept_queued_then
from .hypercorn_connection import aeros_worker_serve
from .hypercorn_h11 import cached_response_headers


class HypercornBackend:
    """HTTP/1.1 and HTTP/2 (ALPN over TLS) through Hypercorn's asyncio worker."""

    name = "hypercorn"
    proxy_protocol = True  #: reads PROXY headers (aeros_core.proxy_protocol.stream_gate)

    def config(self, settings: ServerSettings) -> Any:
        from hypercorn.config import Config

        config = Config()
        config.graceful_timeout = settings.graceful_timeout
        config.include_server_header = settings.include_server_header
        config.h11_max_incomplete_size = settings.max_head_size
        config.h2_max_header_list_size = settings.max_head_size
        config.keep_alive_timeout = settings.keep_alive_timeout
        config.backlog = settings.backlog
        config.accesslog = None  # the access-log plugin logs, whatever the backend
        config.aeros_proxy_gate = stream_gate(settings)  # type: ignore[attr-defined]  # None unless proxy_protocol
        errors = logging.getLogger(SERVER_LOGGER)
        config.errorlog = errors
        config.loglevel = logging.getLevelName(errors.getEffectiveLevel())
        if settings.tls:
            config.certfile = settings.certfile
            config.keyfile = settings.keyfile
        for name, value in settings.backend_options.items():
            if not hasattr(config, name):
                raise TypeError(f"unknown Hypercorn setting {name!r} passed to run()")
            setattr(config, name, value)
        cached_response_headers(config)
        return config

    async def serve(
        self,
        app: Callable[..., Awaitable[None]],
        settings: ServerSettings,
        sockets: list[socket.socket],
        shutdown_trigger: Callable[[], Awaitable[Any]],
    ) -> None:
        from hypercorn.config import Sockets
        from hypercorn.utils import wrap_app

        config = self.config(settings)
        table = ConnectionTable(max_connections(settings), settings.header_timeout, self.name)
        config.aeros_connections = table  # read by each connection (AerosTCPServer)
        lifecycle = settings.lifecycle
        config.aeros_closing = lifecycle.closing if lifecycle is not None else asyncio.Event()
        secure, insecure = (sockets, []) if settings.tls else ([], sockets)
        try:
            await aeros_worker_serve()(
                wrap_app(app, config.wsgi_max_body_size, "asgi"),
                config,
                sockets=Sockets(secure_sockets=list(secure), insecure_sockets=list(insecure), quic_sockets=[]),
                shutdown_trigger=accept_queued_then(shutdown_trigger, sockets),
            )
        finally:
            table.close()


@hookimpl
def aeros_server_backend(name: str) -> HypercornBackend | None:
    return HypercornBackend() if name == "hypercorn" else None
