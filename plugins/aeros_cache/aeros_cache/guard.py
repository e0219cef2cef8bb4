"""Backend calls that never fail a request: failures become misses, warnings are rate-limited."""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from .backends import CacheBackend
from .entry import Entry

log = logging.getLogger("aeros.cache")
T = TypeVar("T")


class Guard:
    """Wraps a backend: an exception is logged (at most once per ``warn_every`` seconds) and
    the backend is skipped for ``retry_after`` seconds, then tried again; so the cache comes
    back by itself when the backend does, and a dead backend costs no timeout per request."""

    def __init__(self, backend: CacheBackend, retry_after: float = 1.0, warn_every: float = 30.0) -> None:
        self.backend = backend
        self.retry_after = retry_after
        self.warn_every = warn_every
        self._down_until = 0.0
        self._last_warning = -1e18
        self._suppressed = 0
        self._broken = False

    @property
    def available(self) -> bool:
        return not self._broken or time.monotonic() >= self._down_until

    def failed(self, operation: str, error: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self.retry_after
        self._broken = True
        if now - self._last_warning >= self.warn_every:
            more = f" ({self._suppressed} more failures since the last warning)" if self._suppressed else ""
            log.warning(
                "cache backend %s failed on %s: %s: %s; answering without the cache, retrying every %gs%s",
                self.backend.describe(),
                operation,
                type(error).__name__,
                error,
                self.retry_after,
                more,
            )
            self._last_warning = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def succeeded(self) -> None:
        if self._broken:
            self._broken = False
            self._suppressed = 0
            log.warning("cache backend %s works again", self.backend.describe())

    async def call(self, operation: str, function: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        if not self.available:
            return None
        try:
            result = await function(*args)
        except Exception as error:
            self.failed(operation, error)
            return None
        self.succeeded()
        return result

    async def get(self, key: str) -> Entry | None:
        return await self.call("get", self.backend.get, key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> bool:
        if not self.available:
            return False
        try:
            await self.backend.set(key, entry, ttl)
        except Exception as error:
            self.failed("set", error)
            return False
        self.succeeded()
        return True
