"""Helpers from the original Aeros: ``jsonify`` and ``sync_to_async``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from quart import jsonify

__all__ = ["jsonify", "sync_to_async"]

T = TypeVar("T")


def sync_to_async(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Decorate a blocking function so that awaiting it runs it in a thread.

    The event loop keeps serving other requests meanwhile; context variables are carried over::

        @sync_to_async
        def slow():
            time.sleep(2)
            return "ok"

        @app.route("/")
        async def home():
            return {"status": await slow()}
    """

    @functools.wraps(function)
    async def run_in_thread(*args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(function, *args, **kwargs)

    return run_in_thread
