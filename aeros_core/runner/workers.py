"""``workers=N``: N processes serving the already-built app, supervised by the parent.

Where the platform can fork, each worker inherits the app object and the listening socket.
Where it cannot (Windows, or ``AEROS_START_METHOD=spawn``), workers are spawned: the
child re-imports the module that defines the app (the main script runs as
``__mp_main__``, so its ``if __name__ == "__main__":`` block does not run again) and finds
the app by the variable name it has there.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..observe import exit_reason, worker_event
from .logs import configure
from .process import FORCED_EXIT, serve_until_signalled
from .settings import ServerSettings

log = logging.getLogger("aeros")

POLL_SECONDS = 0.05
STARTUP_FAILURES_BEFORE_GIVING_UP = 5


def start_method() -> str:
    wanted = os.environ.get("AEROS_START_METHOD")
    if wanted:
        return wanted
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def app_reference(app: Any) -> tuple[str, str]:
    """(module, attribute) where a spawned child finds ``app``."""
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not namespace or module_name.startswith("_") and module_name != "__main__":
            continue
        for attribute, value in list(namespace.items()):
            if value is app:
                return ("__mp_main__" if module_name == "__main__" else module_name), attribute
    raise RuntimeError("workers > 1 without fork needs the app at module level (e.g. app = WebServer(__name__))")


def _worker_main(app_or_reference: Any, settings: ServerSettings, sockets: list[socket.socket], ready: Any) -> None:
    if isinstance(app_or_reference, tuple):
        module_name, attribute = app_or_reference
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        app = getattr(module, attribute)
    else:
        app = app_or_reference
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    configure(app, settings)
    serve_until_signalled(app, settings, sockets, on_started=ready.set)


@dataclass
class Worker:
    number: int
    process: Any
    ready: Any
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts, watches and replaces workers; stops them gracefully on SIGINT/SIGTERM."""

    def __init__(self, app: Any, settings: ServerSettings, sockets: list[socket.socket]) -> None:
        """``sockets``: one shared by all workers, or one per worker (SO_REUSEPORT), kept open here
        so that a replacement worker takes over its predecessor's socket and queue."""
        self.app = app
        self.settings = settings
        self.sockets = sockets
        self.method = start_method()
        self.context: Any = multiprocessing.get_context(self.method)
        self.target = app if self.method == "fork" else app_reference(app)
        self.workers: list[Worker] = []
        self.stopping = False
        self.forced = False
        self.startup_failures = 0

    def start_worker(self, number: int) -> Worker:
        ready = self.context.Event()
        process = self.context.Process(
            target=_worker_main,
            args=(self.target, self.settings, [self.socket_for(number)], ready),
            name=f"aeros-worker-{number}",
            daemon=False,
        )
        process.start()
        return Worker(number, process, ready)

    def socket_for(self, number: int) -> socket.socket:
        return self.sockets[number] if len(self.sockets) > 1 else self.sockets[0]

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            if signum == signal.SIGINT:
                self.forced = True
            return
        self.stopping = True

    def run(self) -> int:
        """Supervise until told to stop; returns the exit code for the parent."""
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.workers = [self.start_worker(n) for n in range(self.settings.workers)]
            log.info(
                "started %d workers (%s): pids %s",
                len(self.workers),
                self.method,
                ", ".join(str(w.process.pid) for w in self.workers),
            )
            while not self.stopping:
                time.sleep(POLL_SECONDS)
                if not self.replace_dead_workers():
                    self.stopping = True
                    self.stop_workers()
                    return 1
            return self.stop_workers()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def replace_dead_workers(self) -> bool:
        for index, worker in enumerate(self.workers):
            if worker.process.is_alive() or self.stopping:
                continue
            code = worker.process.exitcode
            if worker.ready.is_set():
                self.startup_failures = 0
            else:
                self.startup_failures += 1
                if self.startup_failures >= STARTUP_FAILURES_BEFORE_GIVING_UP:
                    log.error("workers keep failing before they start serving; giving up")
                    return False
                time.sleep(min(0.2 * 2**self.startup_failures, 2.0))
            replacement = self.start_worker(worker.number)
            log.warning(
                "worker %d (pid %s) exited with code %s; replaced by pid %s",
                worker.number,
                worker.process.pid,
                code,
                replacement.process.pid,
            )
            self.workers[index] = replacement
            worker_event(self.app, "replaced", exit_reason(code), worker.process.pid)
        return True

    def stop_workers(self) -> int:
        """SIGTERM every worker, wait out the grace period, SIGKILL what is left."""
        for worker in self.workers:
            if worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.graceful_timeout + 5
        while time.monotonic() < deadline and not self.forced:
            if not any(w.process.is_alive() for w in self.workers):
                break
            time.sleep(POLL_SECONDS)
        for worker in self.workers:
            if worker.process.is_alive():
                log.warning("worker %d (pid %s) did not stop in time; killing it", worker.number, worker.process.pid)
                worker.process.kill()
            worker.process.join(1)
        if self.forced:
            return FORCED_EXIT
        log.info("all workers stopped")
        return 0
