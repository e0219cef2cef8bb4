"""The serving state of one server (a worker, a single process, or a thread server).

One :class:`Lifecycle` per served app, created by :func:`aeros_core.runner.serve.serve` and
handed to everything that must act on it as ``settings.lifecycle``: the edge (``ready_path``
answers 503 unless :attr:`Lifecycle.ready`), the backends (``Connection: close`` on responses
while :attr:`Lifecycle.draining`), the runner (when to stop accepting).

The phases, in order (see docs/deployment.md "Shutdown order")::

    STARTING --lifespan startup complete--> SERVING --SIGTERM / stop()--> DRAINING
    DRAINING --drain_delay passed: listening sockets closed--> CLOSING
    CLOSING --requests in flight finished or graceful_timeout--> STOPPED
"""

from __future__ import annotations

import asyncio
import enum


class Phase(enum.IntEnum):
    STARTING = 0  #: lifespan startup not complete: ready_path 503
    SERVING = 1  #: ready_path 200
    DRAINING = 2  #: stop asked: ready_path 503, still accepting during drain_delay
    CLOSING = 3  #: listening sockets closed; responses carry Connection: close; idle connections closed
    STOPPED = 4


class Lifecycle:
    """Where one server is in its life; transitions only forward."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        #: set on entering CLOSING: stop accepting, close idle keep-alive connections
        self.closing = asyncio.Event()

    def advance(self, phase: Phase) -> None:
        """Move to ``phase`` (never back)."""
        if phase <= self.phase:
            return
        self.phase = phase
        if phase >= Phase.CLOSING:
            self.closing.set()

    @property
    def ready(self) -> bool:
        """Answer ``ready_path`` with 200: serving, not draining."""
        return self.phase == Phase.SERVING

    @property
    def draining(self) -> bool:
        """A stop was asked: responses should carry ``Connection: close`` once accepting stops."""
        return self.phase >= Phase.DRAINING
