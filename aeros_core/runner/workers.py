"""``workers=N``: N processes serving the already-built app, supervised by the parent.

Where the platform can fork, each worker inherits the app object and the listening sockets.
Where it cannot (Windows, or ``AEROS_START_METHOD=spawn``), workers are spawned: the
child re-imports the module that defines the app (the main script runs as
``__mp_main__``, so its ``if __name__ == "__main__":`` block does not run again) and finds
the app by the variable name it has there.

The supervisor's life is the table in :mod:`aeros_core.runner.states`; :class:`Supervisor`
turns signals and what it sees of its workers into events (:meth:`Supervisor.events`) and
has one method per action of the table.
"""

from __future__ import annotations

import collections
import importlib
import logging
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from ..observe import exit_reason, worker_event
from .heartbeat import STACK_SIGNAL, Heartbeat, RequestCounter, start_beating
from .logs import configure
from .parent import ParentLink, die_with_parent
from .process import FORCED_EXIT, HANDOVER_SIGNAL, serve_until_signalled
from .settings import ServerSettings
from .sockets import INHERIT_ENV, Listeners
from .states import Event, State, step

log = logging.getLogger("aeros")

POLL_SECONDS = 0.05
STARTUP_FAILURES_BEFORE_GIVING_UP = 5
READY_FD_ENV = "AEROS_READY_FD"  #: a SIGHUP successor writes one byte there once its workers serve
STACK_DUMP_WAIT = 1.0  #: at most this long for a stuck worker to take the stack-dump signal
KILL_MARGIN = 5.0  #: beyond drain_delay + graceful_timeout, before remaining workers are killed


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


def _worker_main(
    app_or_reference: Any,
    settings: ServerSettings,
    sockets: list[socket.socket],
    private: list[bool],
    ready: Any,
    heartbeat: Heartbeat,
    parent: tuple[int, socket.socket | None, int],
    forked: bool,
    others: list[socket.socket],
) -> None:
    die_with_parent(*parent, forked=forked)
    for sock in others:  # a forked worker inherits every socket of the supervisor: keep only ours
        sock.close()
    if isinstance(app_or_reference, tuple):
        module_name, attribute = app_or_reference
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        app = getattr(module, attribute)
    else:
        app = app_or_reference
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's signal (and a terminal's hangup)
    configure(app, settings)
    counter = RequestCounter() if settings.max_requests else None
    interval = min(1.0, settings.worker_timeout / 4)
    serve_until_signalled(
        app,
        settings,
        sockets,
        on_started=ready.set,
        on_loop=lambda loop: start_beating(loop, heartbeat, interval, counter, bool(settings.max_worker_memory)),
        wrap=counter.wrap if counter is not None else None,
        private=[sock for sock, alone in zip(sockets, private) if alone],
    )


def process_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (``T``: stopped), ``?`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def signal_pending(pid: int, signum: int) -> bool:
    """Whether ``signum`` waits undelivered for ``pid`` (Linux; False elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            masks = [line.split()[1] for line in status if line.startswith(("SigPnd:", "ShdPnd:"))]
    except OSError:
        return False
    return any(int(mask, 16) & (1 << (signum - 1)) for mask in masks)


@dataclass
class Worker:
    number: int
    process: Any
    ready: Any
    heartbeat: Heartbeat
    request_limit: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    serving: bool = False
    #: a recycled worker's replacement, started before this one is handed over
    replacement: Worker | None = None
    recycle_reason: str | None = None
    stop_by: float = 0.0  #: a worker being stopped is killed after this

    @property
    def pid(self) -> int:
        return cast("int", self.process.pid)


class Supervisor:
    """Starts, watches and replaces workers; stops them gracefully on SIGINT/SIGTERM; restarts
    the whole server without dropping a connection on SIGHUP."""

    def __init__(self, app: Any, settings: ServerSettings, listeners: Listeners) -> None:
        """``listeners``: per address, one socket shared by all workers or one per worker
        (SO_REUSEPORT), kept open here so that a replacement worker takes over its
        predecessor's socket and queue."""
        self.app = app
        self.settings = settings
        self.listeners = listeners
        self.method = start_method()
        self.context: Any = multiprocessing.get_context(self.method)
        self.target = app if self.method == "fork" else app_reference(app)
        self.parent = ParentLink()
        self.state = State.STARTING
        self.workers: list[Worker] = []
        self.stopping: list[Worker] = []  #: handed over or stopped, not yet exited
        self.pending: collections.deque[Event] = collections.deque()
        self.startup_failures = 0
        self.exit_code = 0
        self.restarts: collections.Counter[str] = collections.Counter()  #: by reason
        self.drain_at: float | None = None
        self.grace_at: float | None = None
        self.successor: subprocess.Popen[bytes] | None = None
        self.successor_ready: int | None = None  #: read end of the successor's ready pipe

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; returns the exit code for the parent."""
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, self.on_signal) for s in handled}
        try:
            self.workers = [self.start_worker(n) for n in range(self.settings.workers)]
            log.info(
                "started %d workers (%s): pids %s",
                len(self.workers),
                self.method,
                ", ".join(str(w.pid) for w in self.workers),
            )
            while not self.stopped:
                for event, worker in list(self.events()):
                    self.handle(event, worker)
                    if self.stopped:
                        break
                else:
                    time.sleep(POLL_SECONDS)
            return self.exit_code
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @property
    def stopped(self) -> bool:
        return self.state is State.STOPPED

    def on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.pending.append(Event.RELOAD)
        elif signum == signal.SIGINT and self.state is State.DRAINING:
            self.pending.append(Event.FORCE)
        else:
            self.pending.append(Event.STOP)

    def handle(self, event: Event, worker: Worker | None = None) -> None:
        """One transition of the table: the action, then the next state."""
        transition = step(self.state, event)
        if transition is None:
            log.debug("supervisor: %s ignored while %s", event.name, self.state.value)
            return
        action, next_state = transition
        log.debug("supervisor: %s: %s -> %s (%s)", event.name, self.state.value, next_state.value, action)
        self.state = next_state
        method = getattr(self, action)
        method(worker, event) if worker is not None else method(event)

    def events(self) -> Iterator[tuple[Event, Worker | None]]:
        """What happened since the last look, as events of the table."""
        while self.pending:
            yield self.pending.popleft(), None
        now = time.monotonic()
        self.reap_stopping(now)
        if self.state is State.DRAINING:
            if self.drain_at is not None and now >= self.drain_at:
                self.drain_at = None
                yield Event.DRAIN_DELAY_PASSED, None
            if not any(w.process.is_alive() for w in self.workers + self.stopping):
                yield Event.WORKERS_GONE, None
            elif self.grace_at is not None and now >= self.grace_at:
                yield Event.GRACE_EXPIRED, None
            return
        for worker in list(self.workers):
            if not worker.process.is_alive():
                yield Event.WORKER_DIED, worker
                continue
            if not worker.serving and worker.ready.is_set():
                worker.serving = True
                self.startup_failures = 0
            if worker.heartbeat.silent_for(now) > self.settings.worker_timeout:
                yield Event.WORKER_STUCK, worker
                continue
            if worker.replacement is not None:
                if worker.replacement.ready.is_set():
                    yield Event.REPLACEMENT_READY, worker
                elif not worker.replacement.process.is_alive():  # the replacement failed: try again
                    worker.replacement = None
            elif worker.serving and self.recycle_reason(worker):
                yield Event.WORKER_RECYCLE, worker
        if self.state is State.STARTING and all(w.serving for w in self.workers):
            yield Event.WORKERS_READY, None
        if self.state is State.RELOADING:
            yield from self.successor_events()

    def recycle_reason(self, worker: Worker) -> str | None:
        if worker.request_limit is not None and worker.heartbeat.requests >= worker.request_limit:
            return "recycled"
        limit = self.settings.max_worker_memory
        if limit and worker.heartbeat.memory_mb > limit:
            return "memory"
        return None

    # --- workers -----------------------------------------------------------------------------

    def start_worker(self, number: int) -> Worker:
        ready = self.context.Event()
        heartbeat = Heartbeat(self.context)
        mine = self.listeners.for_worker(number)
        process = self.context.Process(
            target=_worker_main,
            args=(
                self.target,
                self.settings,
                mine,
                [sock in self.listeners.private(number) for sock in mine],
                ready,
                heartbeat,
                self.parent.worker_args(),
                self.method == "fork",
                [sock for sock in self.listeners.all() if sock not in mine] if self.method == "fork" else [],
            ),
            name=f"aeros-worker-{number}",
            daemon=False,
        )
        process.start()
        limit = self.settings.max_requests
        if limit is not None:
            limit += random.randint(0, self.settings.max_requests_jitter)
        return Worker(number, process, ready, heartbeat, request_limit=limit)

    def replace_worker(self, worker: Worker, event: Event) -> None:
        """The one place where a worker is replaced, with its reason: died, stuck, recycled, memory.

        died/stuck: the replacement starts at once; recycled/memory: it starts now and the old
        worker is handed over (it drains) once the replacement serves (``hand_over_worker``).
        """
        reason = {Event.WORKER_DIED: "died", Event.WORKER_STUCK: "stuck"}.get(event) or self.recycle_reason(worker)
        reason = reason or "recycled"
        self.restarts[reason] += 1
        # observers (aeros-metrics' aeros_worker_restarts_total): a died worker as killed or exited
        worker_event(
            self.app, "replaced", exit_reason(worker.process.exitcode) if reason == "died" else reason, worker.pid
        )
        if reason in ("recycled", "memory"):
            worker.recycle_reason = reason
            for sock in self.listeners.renew(worker.number):  # the old worker drains its own
                sock.close()
            worker.replacement = self.start_worker(worker.number)
            what = (
                f"{worker.heartbeat.requests} requests"
                if reason == "recycled"
                else f"{worker.heartbeat.memory_mb:.0f} MB"
            )
            log.info(
                "worker %d (pid %s) %s after %s; replacement pid %s starting",
                worker.number,
                worker.pid,
                "recycled" if reason == "recycled" else "over max_worker_memory",
                what,
                worker.replacement.pid,
            )
            return
        if reason == "stuck":
            self.dump_and_kill(worker)
        elif not worker.serving:
            self.startup_failures += 1
            if self.startup_failures >= STARTUP_FAILURES_BEFORE_GIVING_UP:
                log.error("workers keep failing before they start serving; giving up")
                self.exit_code = 1
                self.workers.remove(worker)
                self.pending.append(Event.GIVE_UP)
                return
            time.sleep(min(0.2 * 2**self.startup_failures, 2.0))
        replacement = self.start_worker(worker.number)
        log.warning(
            "worker %d (pid %s) %s; replaced by pid %s (%s replacements: %d)",
            worker.number,
            worker.pid,
            f"exited with code {worker.process.exitcode}" if reason == "died" else "was stuck",
            replacement.pid,
            reason,
            self.restarts[reason],
        )
        self.workers[self.workers.index(worker)] = replacement
        if worker.replacement is not None:  # a recycling under way is moot
            self.stop_worker(worker.replacement, signal.SIGKILL)

    def dump_and_kill(self, worker: Worker) -> None:
        """Log where a stuck worker is stuck (its Python stack, on stderr), then kill it."""
        silent = worker.heartbeat.silent_for(time.monotonic())
        if process_state(worker.pid) == "T":
            log.error(
                "worker %d (pid %s) stuck: its event loop has not run for %.1fs (worker_timeout=%s); the process is "
                "stopped (SIGSTOP or a debugger) so its stack cannot be dumped",
                worker.number,
                worker.pid,
                silent,
                self.settings.worker_timeout,
            )
        else:
            log.error(
                "worker %d (pid %s) stuck: its event loop has not run for %.1fs (worker_timeout=%s); its Python stack:",
                worker.number,
                worker.pid,
                silent,
                self.settings.worker_timeout,
            )
            try:
                os.kill(worker.pid, STACK_SIGNAL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + STACK_DUMP_WAIT
            while signal_pending(worker.pid, STACK_SIGNAL) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)  # the dump is written by faulthandler's signal handler, at once
        worker.process.kill()
        worker.process.join(5)

    def hand_over_worker(self, worker: Worker, event: Event) -> None:
        """A recycled worker's replacement serves: the old worker stops, its sockets live on."""
        replacement = worker.replacement
        assert replacement is not None
        replacement.serving = True
        self.workers[self.workers.index(worker)] = replacement
        self.stop_worker(worker, HANDOVER_SIGNAL)
        log.info("worker %d (pid %s) drains; pid %s serves in its place", worker.number, worker.pid, replacement.pid)

    def stop_worker(self, worker: Worker, signum: int) -> None:
        worker.stop_by = time.monotonic() + self.settings.drain_delay + self.settings.graceful_timeout + KILL_MARGIN
        if worker not in self.stopping:
            self.stopping.append(worker)
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def reap_stopping(self, now: float) -> None:
        for worker in list(self.stopping):
            if not worker.process.is_alive():
                worker.process.join(0)
                self.stopping.remove(worker)
            elif now >= worker.stop_by and self.state is not State.DRAINING:
                log.warning("worker %d (pid %s) did not stop in time; killing it", worker.number, worker.pid)
                worker.process.kill()

    # --- stopping ----------------------------------------------------------------------------

    def stop_workers(self, event: Event) -> None:
        """SIGTERM to every worker at once (they answer ready_path 503 during drain_delay); the
        supervisor closes its copies of the sockets after drain_delay (``close_sockets``)."""
        now = time.monotonic()
        self.drain_at = now + self.settings.drain_delay
        self.grace_at = now + self.settings.drain_delay + self.settings.graceful_timeout + KILL_MARGIN
        for worker in self.workers:
            for one in (worker, worker.replacement):
                if one is not None and one.process.is_alive():
                    self.stop_worker(one, signal.SIGTERM)

    def stop_all(self, event: Event) -> None:
        """A stop while a SIGHUP successor starts: the successor stops too."""
        if self.successor is not None and self.successor.poll() is None:
            self.successor.send_signal(signal.SIGTERM)
        self.stop_workers(event)

    def close_sockets(self, event: Event) -> None:
        self.listeners.close()

    def finish(self, event: Event) -> None:
        for worker in self.workers + self.stopping:
            worker.process.join(1)
        self.listeners.close()
        log.info("all workers stopped")

    def kill_workers(self, event: Event) -> None:
        for worker in self.workers + self.stopping:
            if worker.process.is_alive():
                log.warning("worker %d (pid %s) did not stop in time; killing it", worker.number, worker.pid)
                worker.process.kill()
            worker.process.join(1)
        self.listeners.close()
        if event is Event.FORCE:
            self.exit_code = FORCED_EXIT

    # --- SIGHUP: a new supervisor on the same sockets -----------------------------------------

    def announce(self, event: Event) -> None:
        log.info("all %d workers serving", len(self.workers))
        fd = os.environ.pop(READY_FD_ENV, None)
        if fd is not None and fd.isdigit():  # we are a SIGHUP successor: the old supervisor may go
            try:
                os.write(int(fd), b"1")
                os.close(int(fd))
            except OSError:
                pass

    def start_successor(self, event: Event) -> None:
        """Run our own command line again, handing it the listening sockets."""
        command = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        environment = {**os.environ, INHERIT_ENV: self.listeners.encode(), READY_FD_ENV: str(write_end)}
        fds = [sock.fileno() for sock in self.listeners.all()]
        self.successor = subprocess.Popen(command, env=environment, pass_fds=[*fds, write_end])
        os.close(write_end)
        self.successor_ready = read_end
        log.info("SIGHUP: restarting; new supervisor pid %s on the same sockets", self.successor.pid)

    def successor_events(self) -> Iterator[tuple[Event, None]]:
        assert self.successor is not None and self.successor_ready is not None
        try:
            ready = os.read(self.successor_ready, 1) == b"1"
        except BlockingIOError:
            ready = False
        if ready:
            yield Event.SUCCESSOR_READY, None
        elif self.successor.poll() is not None:
            yield Event.SUCCESSOR_FAILED, None

    def keep_serving(self, event: Event) -> None:
        log.error(
            "SIGHUP restart failed: the new supervisor exited with %s; still serving",
            self.successor.returncode if self.successor else "?",
        )
        self.close_successor_pipe()

    def hand_over_all(self, event: Event) -> None:
        """The new supervisor serves: our workers stop, leaving it the sockets; we exit after them."""
        self.close_successor_pipe()
        log.info("new supervisor pid %s serves; the old workers drain", self.successor.pid if self.successor else "?")
        now = time.monotonic()
        self.drain_at = now  # our copies of the sockets go now: the successor holds them
        self.grace_at = now + self.settings.graceful_timeout + KILL_MARGIN
        for worker in self.workers:
            for one in (worker, worker.replacement):
                if one is not None and one.process.is_alive():
                    self.stop_worker(one, HANDOVER_SIGNAL)

    def close_successor_pipe(self) -> None:
        if self.successor_ready is not None:
            os.close(self.successor_ready)
            self.successor_ready = None
