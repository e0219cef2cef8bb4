"""The ASGI lifespan of an app served by granian, run by aeros rather than by granian.

granian runs the lifespan shutdown only after its server has stopped; when it does not stop (a
connection it keeps waiting for), the app's ``after_serving`` never ran and ``stop()`` hung until
forced. Here startup completes before granian serves, and shutdown runs once serving ended, by
itself or cut short after ``graceful_timeout``: always, and in bounded time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class LifespanFailed(RuntimeError):
    pass


class Lifespan:
    """Drives one app's ``lifespan`` scope: :meth:`startup`, then :meth:`shutdown`."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = True

    async def run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        try:
            await self.app(scope, self.incoming.get, self.outgoing.put)
        except Exception as error:  # an app without lifespan support raises on the scope type
            await self.outgoing.put({"type": "aeros.lifespan.error", "message": repr(error)})

    async def exchange(self, message: str) -> None:
        await self.incoming.put({"type": f"lifespan.{message}"})
        reply = await self.outgoing.get()
        if reply["type"] == f"lifespan.{message}.complete":
            return
        raise LifespanFailed(f"lifespan {message} failed: {reply.get('message', '')}")

    async def startup(self) -> None:
        self.task = asyncio.ensure_future(self.run())
        try:
            await self.exchange("startup")
        except BaseException:
            await self.end()
            raise

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        try:
            await self.exchange("shutdown")
        finally:
            await self.end()

    async def end(self) -> None:
        """The lifespan task finishes (an app that still waits for a message is cancelled)."""
        task = self.task
        if task is None:
            return
        await asyncio.wait({task}, timeout=0.1)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1)
