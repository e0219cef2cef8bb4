"""Starting servers from Python: one process, supervised workers, or a background thread."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from . import fdlimit, logs
from .settings import ServerSettings
from .sockets import INHERIT_ENV, listen, url_of

log = logging.getLogger("aeros")


def prepare(app: Any, keywords: dict[str, Any], thread: bool = False) -> ServerSettings:
    """Settings from the keywords given in code, the environment and the defaults, adjusted by
    plugins, with logging configured."""
    settings = ServerSettings.resolve(keywords, thread=thread)
    if settings.debug:  # as Quart's run(debug=True): debug on, and the reloader unless told otherwise
        app.debug = True
        if not (thread or "reload" in keywords or ServerSettings.env_name("reload") in os.environ):
            settings.reload = True
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    fdlimit.apply(settings)  # raise RLIMIT_NOFILE; derive max_connections from it
    from .serve import backend_for

    backend_for(app, settings.server)  # fail now, in the caller, for an unknown backend
    logs.configure(app, settings, thread)
    return settings


def run(app: Any, keywords: dict[str, Any]) -> None:
    """``app.run(...)``: serve until SIGINT/SIGTERM (see ``WebServer.run``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("app.run() blocks; inside a running event loop use app.run_in_thread()")

    from . import reload

    settings = prepare(app, keywords)
    if settings.reload and not reload.is_child():
        raise SystemExit(reload.supervise(settings))
    from .serve import backend_for

    if settings.workers == 1 and (settings.max_requests or settings.max_worker_memory):
        raise ValueError("max_requests and max_worker_memory recycle workers: they need workers >= 2")
    check_supported = getattr(backend_for(app, settings.server), "check_supported", None)
    if check_supported is not None:  # refused here, once, rather than by every worker
        check_supported(settings)

    listeners = listen(settings)
    for variable in (INHERIT_ENV, "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(variable, None)  # used: not for our children
    for group in listeners.groups:
        log.info(
            "Running on %s (server: %s, workers: %d, pid %d)",
            url_of(settings, group[0]),
            settings.server,
            settings.workers,
            os.getpid(),
        )
    try:
        if settings.workers == 1:
            from .process import serve_until_signalled

            serve_until_signalled(app, settings, listeners.for_worker(0))
        else:
            from .workers import Supervisor

            code = Supervisor(app, settings, listeners).run()
            if code:
                raise SystemExit(code)
    finally:
        listeners.close()
    log.info("Server stopped")
