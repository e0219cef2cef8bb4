"""Backend calls that never fail a request: failures become misses, and the log follows real changes.

Reads (``get``) and writes (``set``, ``delete``, ``clear``, ...) are tracked apart: a store that
can be read but not written (read-only directory, full disk, Redis replica) is one change of
state, logged once as "failed" for writes, and "works again" is logged once, when a *write*
succeeds again. A successful read never declares writes recovered, nor the other way round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .backends import CacheBackend
from .entry import Entry

log = logging.getLogger("aeros.cache")
T = TypeVar("T")

#: operations that only read; everything else (``set``, ``delete``, ``clear``, ``lock``, ...) is a write
READS = frozenset({"get", "startup"})


class Health:
    """The state of one kind of operation (reads or writes) against one backend."""

    __slots__ = ("kind", "broken", "down_until", "failures")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.broken = False
        self.down_until = 0.0
        self.failures = 0


class Guard:
    """Wraps a backend. A failure is logged when its kind of operation goes from working to
    failing; that kind is then skipped for ``retry_after`` seconds and tried again, so a dead
    backend costs no timeout per request and the cache comes back by itself. Recovery is logged
    once, with the number of failures in between."""

    def __init__(self, backend: CacheBackend, retry_after: float | None = None) -> None:
        self.backend = backend
        self.retry_after = backend.retry_after if retry_after is None else retry_after
        self.reads = Health("reads")
        self.writes = Health("writes")

    def _health(self, operation: str) -> Health:
        return self.reads if operation in READS else self.writes

    def available(self, operation: str) -> bool:
        health = self._health(operation)
        return not health.broken or time.monotonic() >= health.down_until

    def failed(self, operation: str, error: BaseException) -> None:
        health = self._health(operation)
        health.down_until = time.monotonic() + self.retry_after
        health.failures += 1
        if health.broken:
            return
        health.broken = True
        log.warning(
            "cache backend %s failed on %s (%s): %s: %s; answering without it, retrying every %gs",
            self.backend.describe(),
            health.kind,
            operation,
            type(error).__name__,
            error,
            self.retry_after,
        )

    def succeeded(self, operation: str) -> None:
        health = self._health(operation)
        if health.broken:
            health.broken = False
            log.warning(
                "cache backend %s works again for %s (%d failures meanwhile)",
                self.backend.describe(),
                health.kind,
                health.failures,
            )
            health.failures = 0

    async def call(self, operation: str, function: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        if not self.available(operation):
            return None
        try:
            result = await function(*args)
        except Exception as error:
            self.failed(operation, error)
            return None
        self.succeeded(operation)
        return result

    async def get(self, key: str) -> Entry | None:
        return await self.call("get", self.backend.get, key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> bool:
        if not self.available("set"):
            return False
        try:
            await self.backend.set(key, entry, ttl)
        except Exception as error:
            self.failed("set", error)
            return False
        self.succeeded("set")
        return True
