"""stale-while-revalidate: the stale entry is answered at once, and one background request per
key (per process by ``refreshing``, across the fleet by the backend's lock) runs the view again
through Quart, marked as a refresh. Its failure keeps the stale entry."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, cast

from .flight import UNAVAILABLE
from .options import REFRESH_KEY, SCOPE_KEY, STATE_KEY

if TYPE_CHECKING:
    from .plugin import CachePlugin

log = logging.getLogger("aeros.cache")


class Refresher:
    def __init__(self, plugin: CachePlugin) -> None:
        self.plugin = plugin
        #: keys being refreshed in the background by this process, and their tasks
        self.refreshing: dict[str, asyncio.Task[Any]] = {}

    def start(self, scope: Any, key: str) -> None:
        if key in self.refreshing:
            return
        task = asyncio.get_running_loop().create_task(self._run(dict(scope), key))
        self.refreshing[key] = task
        task.add_done_callback(lambda _task: self.refreshing.pop(key, None))

    async def _run(self, scope: dict[str, Any], key: str) -> None:
        """Run the view for ``key`` through Quart, as a request of its own marked as a refresh
        (it skips the lookup and stores its answer); across processes, only the lock holder."""
        locks = self.plugin.locks
        assert locks is not None
        token = await locks.take(key) if locks.active else ""
        if token is None:
            return  # another process refreshes it
        token = None if token is UNAVAILABLE else token
        renewal = locks.keep(key, token) if token else None  # the view may outlast lock_timeout
        try:
            if token:  # another process may have refreshed it between our lookup and our lock
                entry = await self.plugin.lookup(key, scope["headers"])
                if entry is not None and entry.is_fresh(time.time()):
                    return
            scope.pop(STATE_KEY, None)
            scope.pop(SCOPE_KEY, None)
            scope[REFRESH_KEY] = True
            started = False
            never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            async def receive() -> dict[str, Any]:
                nonlocal started
                if not started:
                    started = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return cast(
                    "dict[str, Any]", await never
                )  # no disconnect: Quart stops listening when the answer is done

            status: list[int] = []

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await self.plugin.app.asgi_app(scope, receive, send)
            if status and status[0] >= 500:
                log.warning("refreshing %.200s failed (status %s); the stale entry is kept", key, status[0])
        except Exception:
            log.exception("refreshing %.200s failed; the stale entry is kept", key)
        finally:
            if renewal is not None:
                renewal.stop()
            if token:
                await locks.give_back(key, token)
