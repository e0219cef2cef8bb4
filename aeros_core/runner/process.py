"""Serving in the current process's main thread until SIGINT/SIGTERM (also each worker's body)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any, Callable

from .serve import new_event_loop, serve
from .settings import ServerSettings

log = logging.getLogger("aeros")
FORCED_EXIT = 130


def serve_until_signalled(
    app: Any,
    settings: ServerSettings,
    sockets: list[socket.socket],
    on_started: Callable[[], None] = lambda: None,
) -> None:
    """First SIGINT/SIGTERM: stop accepting and drain; a second SIGINT: exit at once."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            if signum == signal.SIGINT:
                log.warning("second interrupt: stopping at once (pid %d)", os.getpid())
                os._exit(FORCED_EXIT)
            return
        log.info("%s received: finishing requests in flight (pid %d)", signal.Signals(signum).name, os.getpid())
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        loop.run_until_complete(serve(app, settings, sockets, stop, on_started))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
