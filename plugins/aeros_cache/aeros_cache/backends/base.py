"""The backend interface, and what every backend shares (flask-caching ``config``, damage reports)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..entry import DamagedEntry, Entry

log = logging.getLogger("aeros.cache")

#: flask-caching configuration names (the original Aeros passed ``config={...}``) -> keywords
_CONFIG_NAMES = {
    "CACHE_DEFAULT_TIMEOUT": "default_timeout",
    "CACHE_THRESHOLD": "threshold",
    "CACHE_DIR": "directory",
    "CACHE_REDIS_URL": "url",
    "CACHE_REDIS_HOST": "host",
    "CACHE_REDIS_PORT": "port",
    "CACHE_REDIS_PASSWORD": "password",
    "CACHE_REDIS_DB": "db",
    "CACHE_KEY_PREFIX": "key_prefix",
}


def from_config(config: Mapping[str, Any] | None, accepted: tuple[str, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Keywords from a flask-caching ``config`` mapping; explicit keywords win."""
    if not config:
        return given
    values = dict(given)
    for name, value in config.items():
        keyword = _CONFIG_NAMES.get(name)
        if keyword in accepted:
            values.setdefault(keyword, value)
        elif name != "CACHE_TYPE":
            log.warning("cache configuration %s is not used by this backend", name)
    return values


class CacheBackend:
    """Base class of the backends. ``default_timeout`` (seconds, ``0`` = never) applies to
    ``@app.cache(timeout=None)``."""

    #: whether a lookup is cheap enough to be done for every request at the ASGI edge
    in_process: bool = False
    #: seconds a failing kind of operation (reads or writes) is skipped before it is tried again
    retry_after: float = 1.0

    def __init__(self, default_timeout: float = 300) -> None:
        self.default_timeout = default_timeout

    async def get(self, key: str) -> Entry | None:
        raise NotImplementedError

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry``; ``ttl`` seconds until the backend may drop it (``None``: never)."""
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many went."""
        raise NotImplementedError

    async def clear(self) -> None:
        raise NotImplementedError

    # --- single flight across processes (backends shared by several processes override these) ---

    #: seconds a single-flight lock lives unless its holder renews it (:meth:`extend`, every
    #: third of it while the view runs): a holder that dies blocks its key at most this long
    lock_timeout: float = 10.0
    #: whether :meth:`acquire` coordinates other processes (``False``: single flight per process only)
    shared_locks: bool = False

    async def acquire(self, key: str) -> str | None:
        """Try to take the lock of ``key``: a token to :meth:`release` it with, ``None`` if another holds it."""
        return ""

    async def release(self, key: str, token: str) -> None:
        """Give the lock back if ``token`` still holds it, and wake the waiters."""

    async def extend(self, key: str, token: str) -> bool:
        """Push the expiry of the lock of ``key`` to ``lock_timeout`` seconds from now, only if
        ``token`` still holds it (compare-and-extend); ``False`` if it does not (the lock expired
        and was broken, or was removed). Backends without shared locks have nothing to extend."""
        return True

    async def wait_released(self, key: str, timeout: float) -> None:
        """Return once the lock of ``key`` is free (released, expired, or taken by another holder
        since), or after ``timeout`` seconds. A holder that keeps renewing it is waited for."""

    # --- invalidation by tag ---

    async def delete_tags(self, tags: list[str]) -> int:
        """Delete every entry stored with one of ``tags``; return how many went."""
        raise NotImplementedError

    async def startup(self) -> None:
        """Open per-event-loop resources (called in each serving loop)."""

    async def shutdown(self) -> None:
        """Close what :meth:`startup` opened in the current loop."""

    def describe(self) -> str:
        return type(self).__name__

    def _report_damage(self, key: str, error: DamagedEntry) -> None:
        """Log a damaged entry once (it is deleted; if deleting fails, the key is remembered)."""
        reported = self.__dict__.setdefault("_damaged_reported", OrderedDict())
        if hash(key) in reported:
            return
        reported[hash(key)] = None
        while len(reported) > 256:
            reported.popitem(last=False)
        log.warning(
            "cache entry %.200r in %s is damaged (%s): deleted, answered as a miss", key, self.describe(), error
        )
