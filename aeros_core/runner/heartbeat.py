"""What a worker tells its supervisor without a message: shared memory, written by the worker's
event loop, read by the supervisor.

Three numbers per worker (a ``multiprocessing.RawArray``, which works with fork and spawn):
the last tick of the worker's event loop (``time.monotonic()``, one clock for every process on
the machine), the requests it has served, its resident memory in MB. The loop writes them
from a timer every ``interval`` seconds: no cost per request, except counting requests, which
only a worker with ``max_requests`` does (:class:`RequestCounter`).
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

TICK, REQUESTS, MEMORY = 0, 1, 2
STACK_SIGNAL = signal.SIGUSR1  #: the supervisor asks a stuck worker for its Python stack
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20


def resident_mb() -> float:
    """This process's resident set size in MB (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


class Heartbeat:
    """One worker's numbers, shared between the worker and the supervisor."""

    def __init__(self, context: Any) -> None:
        self.values = context.RawArray("d", 3)  # zeros: TICK 0.0 until the worker's loop runs

    # read by the supervisor
    def silent_for(self, now: float) -> float:
        """Seconds since the worker's event loop last ticked; 0 before its first tick."""
        last = self.values[TICK]
        return now - last if last else 0.0

    @property
    def requests(self) -> int:
        return int(self.values[REQUESTS])

    @property
    def memory_mb(self) -> float:
        return cast("float", self.values[MEMORY])


class RequestCounter:
    """Counts the requests of one worker: ``wrap`` the ASGI entry (only with ``max_requests``)."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        def counted(scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
            self.count += 1
            return app(scope, receive, send)

        return counted


def start_beating(
    loop: asyncio.AbstractEventLoop,
    heartbeat: Heartbeat,
    interval: float,
    counter: RequestCounter | None,
    measure_memory: bool,
) -> None:
    """In the worker: tick from ``loop`` every ``interval`` seconds; dump the Python stack of every
    thread to stderr on :data:`STACK_SIGNAL` (faulthandler works even while the loop is stuck)."""
    faulthandler.register(STACK_SIGNAL, file=sys.stderr, all_threads=True)
    values = heartbeat.values

    def tick() -> None:
        values[TICK] = time.monotonic()
        if counter is not None:
            values[REQUESTS] = counter.count
        if measure_memory:
            values[MEMORY] = resident_mb()
        loop.call_later(interval, tick)

    tick()
