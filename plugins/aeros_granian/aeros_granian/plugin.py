"""The granian server backend (EXPERIMENTAL): ``app.run(server="granian")``.

granian's embedded server (``granian.server.embed.Server``, marked experimental by granian)
runs in the runner's event loop and serves the socket the runner created: the runner keeps
the supervisor, forked workers, signals, ``soft_limit`` and the access log. Two private
granian names make that possible, which is why the dependency is pinned to one minor
release: ``granian._granian.SocketHolder(fd, uds, backlog)`` adopts a listening socket, and
``Server._init_shared_socket`` is replaced so that granian does not bind one of its own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from aeros_core.hookspecs import hookimpl
from aeros_core.runner.fdlimit import max_connections
from aeros_core.runner.logs import SERVER_LOGGER, route_to_server_log
from aeros_core.runner.settings import ServerSettings

from .lifespan import Lifespan, LifespanFailed

GRANIAN_LOGGER = "_granian"  # the name granian's Python and Rust code log under
MIN_BUFFER = 8192  # hyper refuses a smaller read buffer
KILL_GRACE = 0.5  # seconds granian gets to wind down after the requests in flight were cancelled

#: Keywords of ``granian.server.embed.Server`` that the runner owns (refused in ``run()``).
RUNNER_OWNED = frozenset({"target", "address", "port", "uds", "interface", "factory", "log_enabled"})

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def _route_granian_logs() -> None:
    """Send granian's log through aeros's server log."""
    route_to_server_log(GRANIAN_LOGGER)


def _granian_level() -> str:
    level = logging.getLogger(SERVER_LOGGER).getEffectiveLevel()
    # "Embedded server is experimental!" is a warning granian logs on every start: keep it
    # out of an app's log unless the server log is at INFO or below.
    return _LEVELS.get(max(level, logging.ERROR) if level >= logging.WARNING else level, "warning")


@functools.cache
def _server_keywords() -> frozenset[str]:
    from granian.server.embed import Server

    return frozenset(inspect.signature(Server.__init__).parameters) - {"self"}


class GranianBackend:
    """HTTP/1.1 (and HTTP/2 over TLS by ALPN) through granian's Rust server, one Rust thread."""

    name = "granian"

    def server_keywords(self, settings: ServerSettings) -> dict[str, Any]:
        """The ``granian.server.embed.Server`` keywords for ``settings`` (``backend_options`` win)."""
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings

        keywords: dict[str, Any] = {
            "address": settings.host,
            "port": settings.port,
            "interface": Interfaces.ASGINL,  # the lifespan is run by aeros (lifespan.py)
            "http": HTTPModes.auto if settings.tls else HTTPModes.http1,
            "backlog": settings.backlog,
            "runtime_threads": 1,
            "http1_settings": HTTP1Settings(
                max_buffer_size=max(settings.max_head_size, MIN_BUFFER),
                # hyper's one timer: from a connection's start, or the end of the previous
                # response, to the end of the next head: both keep_alive_timeout and header_timeout
                header_read_timeout=max(1, int(min(settings.header_timeout, settings.keep_alive_timeout) * 1000)),
            ),
            "backpressure": max_connections(settings),
            "log_level": _granian_level(),
            # granian configures its loggers with dictConfig; incremental, so that the
            # handlers aeros (and the user) configured are not closed.
            "log_dictconfig": {"incremental": True, "handlers": {}, "loggers": {GRANIAN_LOGGER: {}}},
            "log_access": False,  # the aeros access log works at the ASGI edge
        }
        if settings.tls:
            keywords["ssl_cert"] = Path(str(settings.certfile))
            keywords["ssl_key"] = Path(str(settings.keyfile))
        known = _server_keywords()
        for name, value in settings.backend_options.items():
            if name not in known or name in RUNNER_OWNED:
                raise TypeError(f"unknown or runner-owned granian setting {name!r} passed to run()")
            keywords[name] = value
        return keywords

    def check_supported(self, settings: ServerSettings) -> None:
        """Refuse, before serving, what this backend cannot do as asked."""
        if settings.bind and len(settings.bind) > 1:
            raise ValueError(
                f"the granian backend serves one address, bind={settings.bind!r} lists {len(settings.bind)}; "
                "use server='hypercorn' or server='uvicorn'"
            )
        if not settings.include_server_header:
            raise ValueError(
                "the granian backend cannot leave out the Server header (include_server_header=False); "
                "use server='hypercorn' or server='uvicorn'"
            )

    async def serve(
        self,
        app: Callable[..., Awaitable[None]],
        settings: ServerSettings,
        sockets: list[socket.socket],
        shutdown_trigger: Callable[[], Awaitable[Any]],
    ) -> None:
        from granian._granian import SocketHolder
        from granian.server.embed import Server

        if len(sockets) != 1:
            raise ValueError(f"the granian backend serves exactly one socket, got {len(sockets)}")
        self.check_supported(settings)
        _route_granian_logs()
        sock = sockets[0]
        uds = sock.family == getattr(socket, "AF_UNIX", None)
        in_flight = _InFlight(app)
        # Typed as Any: the attributes set below are private to granian (and its stubs disagree).
        server: Any = Server(in_flight, **self.server_keywords(settings))
        holder: Any = SocketHolder
        # Stopping waits for the worker without granian's own time limit: granian would cancel
        # the worker (skipping the lifespan shutdown) and leave the connections in flight open.
        # graceful_timeout is applied below by cancelling the requests still running instead.
        server.workers_kill_timeout = None

        def adopt_runner_socket() -> None:  # replaces granian's own bind
            fd = os.dup(sock.fileno())  # the holder closes what it holds; the runner closes its own
            server._ssp = None
            server._shd = holder(fd, uds, settings.backlog)
            server._sfd = fd

        server._init_shared_socket = adopt_runner_socket
        lifespan = Lifespan(app)
        try:
            await lifespan.startup()
        except LifespanFailed as error:
            raise RuntimeError(f"granian could not serve the app: {error}") from None
        try:
            await self._serve_until_stopped(server, in_flight, shutdown_trigger, settings.graceful_timeout)
        finally:
            await lifespan.shutdown()

    async def _serve_until_stopped(
        self, server: Any, in_flight: _InFlight, shutdown_trigger: Callable[[], Awaitable[Any]], graceful: float
    ) -> None:
        serving = asyncio.ensure_future(server.serve())
        stopping = asyncio.ensure_future(shutdown_trigger())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not serving.done():
                server.stop()  # granian stops accepting and waits for the requests in flight
                await self._drain(serving, in_flight, graceful)
            await serving
        except asyncio.CancelledError:
            if not serving.cancelled():
                raise
        except Exception as error:  # e.g. granian.errors.FatalError
            raise RuntimeError(f"granian could not serve the app: {error!r}") from error
        finally:
            stopping.cancel()
        if server.interrupt_children and not server.interrupt_signal:
            raise RuntimeError("granian's worker stopped unexpectedly (see the aeros.server log)")

    @staticmethod
    async def _drain(serving: asyncio.Future[Any], in_flight: _InFlight, graceful_timeout: float) -> None:
        """Let granian finish within ``graceful_timeout``; then cancel what still runs."""
        done, _ = await asyncio.wait({serving}, timeout=graceful_timeout)
        if done:
            return
        log = logging.getLogger(SERVER_LOGGER)
        log.warning("granian: %d request(s) still running after %ss, cancelled", len(in_flight.tasks), graceful_timeout)
        in_flight.cancel()
        done, _ = await asyncio.wait({serving}, timeout=KILL_GRACE)
        if not done:
            log.warning("granian did not stop %ss after the cancellation; stopping it by force", KILL_GRACE)
            serving.cancel()


BAD_BODY = b"400 Bad Request: malformed request body.\n"
BAD_BODY_START = {
    "type": "http.response.start",
    "status": 400,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(BAD_BODY)).encode()),
        (b"connection", b"close"),
    ],
}


_EMPTY_BODY = object()  #: the app's first receive is answered with the empty body
_ANSWERED = object()  #: it was: granian's own first message is not passed on
_BODY_HEADERS = frozenset((b"content-length", b"transfer-encoding"))


def bodiless(scope: dict[str, Any]) -> bool:
    """Whether an HTTP/1.x request has no body by its framing: neither ``Content-Length`` nor
    ``Transfer-Encoding`` (RFC 9112 section 6.3). HTTP/2 requests may carry one without either."""
    if scope.get("http_version") not in ("1.1", "1.0"):
        return False
    for name, _ in scope["headers"]:
        if (len(name) == 14 or len(name) == 17) and name.lower() in _BODY_HEADERS:
            return False
    return True


class _InFlight:
    """The ASGI app, remembering the tasks of the requests in flight (to cancel them at a stop).

    It also answers 400 when a request body breaks off: granian ends the body of a malformed
    chunked request (a bad chunk size, more data than announced, bare LF) as a client disconnect,
    the app gives up without answering, and granian would answer 500 for the client's error.

    An HTTP/1.x request without ``Content-Length`` and ``Transfer-Encoding`` has no body (RFC 9112
    section 6.3; granian reads it so). Its empty body is the answer to the app's first ``receive``
    at once: granian's own ``receive`` never answers on its first step, so the app would need a
    task (and a loop turn) to read a body known to be empty. granian's own first message, asked
    for later (the app watching for the client going away), is then not passed on a second time.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.current_task() if scope["type"] == "http" else None
        if task is None:
            return await self.app(scope, receive, send)
        body_broken = False
        more_body = True
        owed = _EMPTY_BODY if bodiless(scope) else None  # the empty body, answered without granian

        async def watched_receive() -> dict[str, Any]:
            nonlocal body_broken, more_body, owed
            if owed is _EMPTY_BODY:
                owed = _ANSWERED
                more_body = False
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if owed is _ANSWERED:  # granian's own first message: the empty body, answered already
                owed = None
                if message["type"] == "http.request" and not message.get("body") and not message.get("more_body"):
                    message = await receive()
            kind = message["type"]
            if kind == "http.request":
                more_body = message.get("more_body", False)
            elif kind == "http.disconnect" and more_body:
                body_broken = True
            return cast("dict[str, Any]", message)

        self.tasks.add(task)
        try:
            await self.app(scope, watched_receive, send)
        finally:
            self.tasks.discard(task)
        if body_broken:
            try:
                await send(BAD_BODY_START)
                await send({"type": "http.response.body", "body": BAD_BODY})
            except Exception:  # answered already, or the client is gone: nothing to tell
                pass

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class GranianPlugin:
    """Provides the ``"granian"`` server backend (``app.run(server="granian")``)."""

    @hookimpl
    def aeros_server_backend(self, name: str) -> GranianBackend | None:
        return GranianBackend() if name == "granian" else None
