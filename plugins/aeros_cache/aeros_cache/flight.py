"""Single flight across processes and machines: the backend's lock, taken and given back safely.

Within one process, concurrent misses of a key already wait for one request (futures in the
plugin). Across processes, the request that leads in its process also takes the backend's lock
of the key (Redis: ``SET NX PX``; files: an exclusive lock file; both expire after
``backend.lock_timeout`` s, so a holder that died blocks the key no longer). A leader that does
not get the lock waits until it is released or expires, then looks the key up again.

Locks are given back by a compare-and-delete with the holder's token, after the entry is
stored, when the view fails, and when the request is cancelled (from a done-callback: a task).

While its view runs, a held lock is renewed (:class:`Renewal`): every ``lock_timeout / 3`` s a
compare-and-extend with the holder's token pushes its expiry ``lock_timeout`` s ahead, so a
view slower than ``lock_timeout`` keeps its key to itself, while a holder that died stops
renewing and its lock expires as before. A renewal is a timer while the view is young; the task
that extends is only started once the first renewal is due (views slower than a third of
``lock_timeout``). Whoever gives the lock back stops its renewal first. A renewal that fails
(backend error, or the lock lost: it expired or was removed) is logged once and not retried; the
request still answers.
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
        self.renewing: set[asyncio.Task[Any]] = set()  # renewal tasks of the locks held now
        self.losing = False  # a lost lock was logged; the next ones are counted until one renewal succeeds
        self.lost = 0

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

    def keep(self, key: str, token: str) -> Renewal:
        """Renew the lock ``token`` holds until :meth:`Renewal.stop` (call it before giving it back)."""
        return Renewal(self, key, token, self.backend.lock_timeout / 3)

    async def extend(self, key: str, token: str) -> bool:
        """One renewal; ``False`` (logged) if it failed and renewing should stop."""
        try:
            kept = await self.backend.extend(key, token)
        except Exception as error:
            self.guard.failed("renew", error)
            return False
        self.guard.succeeded("renew")
        if not kept:
            self.lost += 1
            if not self.losing:
                self.losing = True
                log.warning(
                    "cache lock of %.200s in %s was lost while its view ran (it expired or was removed; "
                    "lock_timeout=%gs): another process may run the view too; further lost locks are "
                    "counted, not logged, until a renewal succeeds again",
                    key,
                    self.backend.describe(),
                    self.backend.lock_timeout,
                )
        elif self.losing:
            self.losing = False
            log.info("cache locks are renewed again (%d lost meanwhile)", self.lost)
            self.lost = 0
        return bool(kept)

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


class Renewal:
    """Keeps one held lock alive: a timer until the first renewal is due, then a task that
    extends every ``interval`` s, until :meth:`stop` or a failed extension."""

    __slots__ = ("locks", "key", "token", "interval", "timer", "task")

    def __init__(self, locks: FleetLocks, key: str, token: str, interval: float) -> None:
        self.locks = locks
        self.key = key
        self.token = token
        self.interval = interval
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(interval, self._due)

    def _due(self) -> None:
        self.timer = None
        task = self.task = asyncio.get_running_loop().create_task(self._run())
        self.locks.renewing.add(task)
        task.add_done_callback(self.locks.renewing.discard)

    async def _run(self) -> None:
        while await self.locks.extend(self.key, self.token):
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        """Renew no more (synchronous: callable from a done-callback)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
            self.task = None
