"""Serving in the current process's main thread until a stop signal (also each worker's body).

Signals, in a serving process:

* SIGTERM, first SIGINT: stop for good (the sockets close with this process: new handshakes
  are refused and queued connections accepted before they close; see ``sockets.stop_accepting``);
* :data:`HANDOVER_SIGNAL` (SIGUSR2, sent by the supervisor only): stop at once (no drain_delay),
  the address living on in other processes (a recycled worker, a SIGHUP restart): the sockets
  shared with them are just closed here, the ``private`` ones drained as above;
* a second SIGINT: exit at once;
* SIGHUP: a worker ignores it (it is the supervisor's); a single process (``workers=1``) logs
  that it cannot restart and keeps serving, rather than dying of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from .serve import close_loop, new_event_loop, serve
from .settings import ServerSettings

log = logging.getLogger("aeros")
FORCED_EXIT = 130
HANDOVER_SIGNAL = signal.SIGUSR2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, HANDOVER_SIGNAL)


def serve_until_signalled(
    app: Any,
    settings: ServerSettings,
    sockets: list[socket.socket],
    on_started: Callable[[], None] = lambda: None,
    on_loop: Callable[[asyncio.AbstractEventLoop], None] = lambda loop: None,
    wrap: Callable[[Any], Any] | None = None,
    private: list[socket.socket] | None = None,
) -> None:
    """Serve until a stop signal (module docstring). ``on_loop``: called with the event loop
    before serving (a worker's heartbeat); ``wrap``: see :func:`~aeros_core.runner.serve.serve`."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    handover = False

    def on_signal(signum: int) -> None:
        nonlocal handover
        if stop.is_set():
            if signum == signal.SIGINT:
                log.warning("second interrupt: stopping at once (pid %d)", os.getpid())
                os._exit(FORCED_EXIT)
            return
        handover = signum == HANDOVER_SIGNAL
        log.info("%s received: finishing requests in flight (pid %d)", signal.Signals(signum).name, os.getpid())
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    handled = list(STOP_SIGNALS)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:  # one process, no supervisor: not a restart
        loop.add_signal_handler(signal.SIGHUP, log.warning, "SIGHUP ignored: a restart needs workers >= 2")
        handled.append(signal.SIGHUP)
    try:
        on_loop(loop)
        loop.run_until_complete(serve(app, settings, sockets, stop, on_started, lambda: handover, wrap, private))
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        close_loop(loop)
        asyncio.set_event_loop(None)
