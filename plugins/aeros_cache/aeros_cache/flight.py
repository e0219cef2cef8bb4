"""Single flight across processes and machines: the backend's lock, taken and given back safely.

Within one process, concurrent misses of a key already wait for one request (futures in the
plugin). Across processes, the request that leads in its process also takes the backend's lock
of the key (Redis: ``SET NX PX``; files: an exclusive lock file; both expire after
``backend.lock_timeout`` s, so a holder that died blocks the key no longer). A leader that does
not get the lock waits until it is released or expires, then looks the key up again.

Locks are given back by a compare-and-delete with the holder's token, after the entry is
stored, when the view fails, and when the request is cancelled (from a done-callback: a task).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .backends import CacheBackend
from .guard import Guard

log = logging.getLogger("aeros.cache")

#: :meth:`FleetLocks.take` result when the backend could not be asked (run the view unlocked)
UNAVAILABLE = object()


class FleetLocks:
    def __init__(self, backend: CacheBackend, guard: Guard) -> None:
        self.backend = backend
        self.guard = guard
        self.tasks: set[asyncio.Task[Any]] = set()  # releases in flight (kept from the garbage collector)

    @property
    def active(self) -> bool:
        return self.backend.shared_locks

    async def take(self, key: str) -> Any:
        """A token (taken), ``None`` (another holds it) or :data:`UNAVAILABLE` (backend failing)."""
        if not self.guard.available("lock"):
            return UNAVAILABLE
        try:
            token = await self.backend.acquire(key)
        except Exception as error:
            self.guard.failed("lock", error)
            return UNAVAILABLE
        self.guard.succeeded("lock")
        return token

    async def wait(self, key: str, timeout: float) -> bool:
        """Wait until the lock of ``key`` is free; ``False`` if the backend failed meanwhile."""
        try:
            await self.backend.wait_released(key, timeout)
        except Exception as error:
            self.guard.failed("lock", error)
            return False
        return True

    async def give_back(self, key: str, token: str) -> None:
        try:
            await self.backend.release(key, token)
        except Exception as error:  # it expires by itself
            self.guard.failed("unlock", error)

    def give_back_soon(self, key: str, token: str) -> None:
        """:meth:`give_back` from synchronous code (a done-callback of a cancelled request)."""
        try:
            task = asyncio.get_running_loop().create_task(self.give_back(key, token))
        except RuntimeError:  # the loop is gone: the lock expires by itself
            return
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
