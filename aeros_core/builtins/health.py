"""``health_path`` and ``ready_path``, answered at the edge (``Stage.HEALTH``), and ``@app.ready_check``.

* ``health_path`` (liveness): 200 whenever the worker's event loop runs to answer it.
* ``ready_path`` (readiness): 200 while the server is SERVING (``settings.lifecycle``) and every
  ``@app.ready_check`` returns True; 503 before the lifespan startup completes, from SIGTERM on
  (draining), and when a check returns False, raises or takes longer than its timeout.

Both answer GET and HEAD (other methods reach the app), before Quart builds a request context,
with ``Cache-Control: no-store`` above the cache and compression (never cached, never
compressed) and above the access log: they are not logged unless ``log_health=True``, which
puts them just below ``Stage.OBSERVE``. For an app served by an ASGI server aeros did not start
(no lifecycle), readiness follows the ASGI lifespan: 200 after startup completed, 503 once
shutdown began.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from ..hookspecs import hookimpl
from ..pipeline import ASGIApp, AsgiWrapper, Stage
from ..runner.lifecycle import Phase
from ..runner.settings import ServerSettings

log = logging.getLogger("aeros")

ReadyCheck = Callable[[], Awaitable[bool]]
DEFAULT_CHECK_TIMEOUT = 2.0


def _answer(status: int, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


OK = _answer(200, b"ok\n")
NOT_READY = _answer(503, b"not ready\n")
_HEAD = ("GET", "HEAD")


async def run_checks(checks: list[tuple[ReadyCheck, float]]) -> bool:
    """True when every check returns True in time; an exception or a timeout is False (logged)."""
    for check, timeout in checks:
        try:
            if await asyncio.wait_for(check(), timeout) is not True:
                return False
        except asyncio.TimeoutError:
            log.warning("ready check %s took longer than %ss: not ready", getattr(check, "__name__", check), timeout)
            return False
        except Exception:
            log.exception("ready check %s failed: not ready", getattr(check, "__name__", check))
            return False
    return True


class HealthPlugin:
    """One per app: its ``@app.ready_check`` functions and the edge that answers the probes."""

    def __init__(self) -> None:
        self.checks: list[tuple[ReadyCheck, float]] = []

    @hookimpl
    def aeros_app_init(self, app: Any) -> None:
        app.ready_check = self.ready_check

    def ready_check(self, function: ReadyCheck | None = None, *, timeout: float = DEFAULT_CHECK_TIMEOUT) -> Any:
        """Register ``async def check() -> bool``; ``ready_path`` answers 200 only when every check
        returns True within ``timeout`` seconds. ``@app.ready_check`` or ``@app.ready_check(timeout=1)``."""

        def register(check: ReadyCheck) -> ReadyCheck:
            if not inspect.iscoroutinefunction(check):
                raise TypeError(f"@app.ready_check needs an async def, got {check!r}")
            self.checks.append((check, timeout))
            return check

        return register(function) if function is not None else register

    @hookimpl
    def aeros_asgi_wrapper(self, settings: ServerSettings) -> AsgiWrapper | None:
        if not (settings.health_path or settings.ready_path):
            return None
        stage = Stage.OBSERVE - 10 if settings.log_health else Stage.HEALTH
        return AsgiWrapper(stage, self.edge(settings))

    def edge(self, settings: ServerSettings) -> Callable[[ASGIApp], ASGIApp]:
        health_path, ready_path, lifecycle, checks = (
            settings.health_path,
            settings.ready_path,
            settings.lifecycle,
            self.checks,
        )

        def wrap(app: ASGIApp) -> ASGIApp:
            lifespan_phase = Phase.STARTING  # readiness without a lifecycle (an external ASGI server)

            def ready_phase() -> bool:
                return lifecycle.ready if lifecycle is not None else lifespan_phase == Phase.SERVING

            async def watch_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
                async def watched_receive() -> dict[str, Any]:
                    nonlocal lifespan_phase
                    message = await receive()
                    if message["type"] == "lifespan.shutdown":
                        lifespan_phase = Phase.DRAINING
                    return cast("dict[str, Any]", message)

                async def watched_send(message: dict[str, Any]) -> None:
                    nonlocal lifespan_phase
                    await send(message)
                    if message["type"] == "lifespan.startup.complete" and lifespan_phase == Phase.STARTING:
                        lifespan_phase = Phase.SERVING

                await app(scope, watched_receive, watched_send)

            async def readiness(scope: dict[str, Any], send: Any) -> None:
                ready = ready_phase() and (not checks or await run_checks(checks))
                # the lifecycle may have moved while the checks ran
                await respond(scope, send, OK if ready and ready_phase() else NOT_READY)

            def probes(scope: dict[str, Any], receive: Any, send: Any) -> Any:
                # A plain function returning an awaitable: no coroutine frame of ours for other requests.
                kind = scope["type"]
                if kind == "http":
                    path = scope["path"]
                    if path == health_path and scope["method"] in _HEAD:
                        return respond(scope, send, OK)
                    if path == ready_path and scope["method"] in _HEAD:
                        return readiness(scope, send)
                elif kind == "lifespan":
                    return watch_lifespan(scope, receive, send)
                return app(scope, receive, send)

            return probes

        return wrap


async def respond(scope: dict[str, Any], send: Any, answer: tuple[dict[str, Any], dict[str, Any]]) -> None:
    start, body = answer
    await send(dict(start, headers=list(start["headers"])))
    await send(body if scope["method"] != "HEAD" else {"type": "http.response.body", "body": b""})
