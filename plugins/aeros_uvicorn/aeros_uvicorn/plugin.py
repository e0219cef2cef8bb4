"""The uvicorn server backend: ``app.run(server="uvicorn")``.

uvicorn serves the app in the runner's event loop, on the sockets the runner created (the
same supervisor, forked workers, signals, limits and access log as with Hypercorn). The
runner owns the signals: uvicorn's own SIGINT/SIGTERM handling is switched off and the
runner's ``shutdown_trigger`` tells the server to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aeros_core.builtins.connections import ConnectionTable, accept_queued_then
from aeros_core.hookspecs import hookimpl
from aeros_core.runner.fdlimit import max_connections
from aeros_core.runner.logs import SERVER_LOGGER, route_to_server_log
from aeros_core.runner.settings import ServerSettings

STARTED_POLL = 0.01  # seconds between two looks at whether uvicorn finished starting


def _route_uvicorn_logs() -> None:
    """Send ``uvicorn.error`` through aeros's server log, at that log's level."""
    uvicorn_log = route_to_server_log("uvicorn.error")
    uvicorn_log.setLevel(logging.getLogger(SERVER_LOGGER).getEffectiveLevel())


@functools.cache
def _config_keywords() -> frozenset[str]:
    import uvicorn

    return frozenset(inspect.signature(uvicorn.Config.__init__).parameters) - {"self", "app"}


class UvicornBackend:
    """HTTP/1.1 (httptools, or h11 with ``http="h11"``) and WebSockets through uvicorn."""

    name = "uvicorn"
    proxy_protocol = True  #: reads PROXY headers (aeros_core.proxy_protocol.protocol_factory)

    def config_keywords(self, settings: ServerSettings) -> dict[str, Any]:
        """The ``uvicorn.Config`` keywords for ``settings`` (``backend_options`` win)."""
        from aeros_core.proxy_protocol import protocol_factory

        from .protocol import BoundedHttpToolsProtocol

        keywords: dict[str, Any] = {
            "http": BoundedHttpToolsProtocol,
            "lifespan": "on",
            "log_config": None,  # aeros configures logging; uvicorn must not dictConfig
            "access_log": False,  # the access-log plugin logs at the ASGI edge
            "proxy_headers": False,  # as with Hypercorn: the client is the peer address
            "interface": "asgi3",
            "server_header": settings.include_server_header,
            "backlog": settings.backlog,
            "timeout_keep_alive": settings.keep_alive_timeout,
            "timeout_graceful_shutdown": settings.graceful_timeout,
            "h11_max_incomplete_event_size": settings.max_head_size,
        }
        if settings.tls:
            keywords["ssl_certfile"] = settings.certfile
            keywords["ssl_keyfile"] = settings.keyfile
        known = _config_keywords()
        for name, value in settings.backend_options.items():
            if name not in known or name in ("host", "port", "uds", "fd", "workers", "reload"):
                raise TypeError(f"unknown or runner-owned uvicorn setting {name!r} passed to run()")
            keywords[name] = value
        if keywords["http"] == "httptools":
            keywords["http"] = BoundedHttpToolsProtocol
        if keywords["http"] is not BoundedHttpToolsProtocol:
            raise ValueError(
                f"the uvicorn backend applies max_connections, header_timeout and the body rate only with "
                f"its httptools protocol; http={keywords['http']!r} cannot honour them"
            )
        if settings.proxy_protocol:  # the PROXY header comes before HTTP: read it first
            keywords["http"] = protocol_factory(keywords["http"], settings)
        return keywords

    async def serve(
        self,
        app: Callable[..., Awaitable[None]],
        settings: ServerSettings,
        sockets: list[socket.socket],
        shutdown_trigger: Callable[[], Awaitable[Any]],
    ) -> None:
        import uvicorn

        _route_uvicorn_logs()
        config = uvicorn.Config(app, **self.config_keywords(settings))
        config.load()
        config.lifespan_class = _ending_lifespan_class()
        table = ConnectionTable(max_connections(settings), settings.header_timeout, self.name)
        config.aeros_connections = table  # type: ignore[attr-defined]  # read by each connection
        server = _runner_owned_server_class()(config)

        async def stop_when_triggered() -> None:
            await accept_queued_then(shutdown_trigger, list(sockets))()
            # uvicorn skips its shutdown (and the app's lifespan shutdown) when told to exit
            # before its startup finished: wait for it (a failed startup ends serve(), and this task)
            while not server.started:
                await asyncio.sleep(STARTED_POLL)
            server.should_exit = True

        watcher = asyncio.ensure_future(stop_when_triggered())
        try:
            await server.serve(sockets=list(sockets))
        except SystemExit as exit_:  # uvicorn exits the process when the lifespan startup fails
            raise RuntimeError(f"uvicorn could not start the app (exit code {exit_.code})") from None
        finally:
            watcher.cancel()
            table.close()
            await _end_lifespan(getattr(server, "lifespan", None))


async def _end_lifespan(lifespan: Any) -> None:
    """After a failed startup the app still waits for a lifespan message that uvicorn never sends
    (its process would exit): cancel it, so that no task outlives the event loop."""
    task = getattr(lifespan, "task", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)


@functools.cache
def _ending_lifespan_class() -> type:
    from uvicorn.lifespan.on import LifespanOn

    class EndingLifespan(LifespanOn):
        """uvicorn's lifespan, keeping its task (see :func:`_end_lifespan`)."""

        task: asyncio.Task[Any] | None = None

        async def main(self) -> None:
            self.task = asyncio.current_task()
            await super().main()

    return EndingLifespan


@functools.cache
def _runner_owned_server_class() -> type:
    import uvicorn

    class RunnerOwnedServer(uvicorn.Server):
        """A ``uvicorn.Server`` that leaves the process's signal handlers to the aeros runner."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return RunnerOwnedServer


class UvicornPlugin:
    """Provides the ``"uvicorn"`` server backend (``app.run(server="uvicorn")``)."""

    @hookimpl
    def aeros_server_backend(self, name: str) -> UvicornBackend | None:
        return UvicornBackend() if name == "uvicorn" else None
