"""Invalidation: by view or key prefix, by tag, everything; for every process sharing the backend
(``SimpleCache`` workers through :mod:`aeros_cache.backends.workers`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends import SimpleCache
from .key import prefix_key
from .options import ATTRIBUTE

if TYPE_CHECKING:
    from .plugin import CachePlugin


class Invalidation:
    def __init__(self, plugin: CachePlugin) -> None:
        self.plugin = plugin

    async def delete(self, view_or_key: Callable[..., Any] | str) -> int:
        if self.plugin.guard is None:
            return 0
        options = getattr(view_or_key, ATTRIBUTE, None)
        if options is None and isinstance(view_or_key, str):
            options = getattr(self.plugin.app.view_functions.get(view_or_key), ATTRIBUTE, None)
        if options is not None:
            prefixes = [options.view_id + "|"]
        elif isinstance(view_or_key, str):
            prefixes = [prefix_key(view_id, view_or_key) for view_id in self.plugin.views]
        else:
            raise ValueError(f"{view_or_key!r} is not a view decorated with @app.cache(...)")
        count = 0
        for prefix in prefixes:
            count += await self.plugin.guard.call("delete", self.plugin.backend.delete_prefix, prefix) or 0  # type: ignore[union-attr]
        return count

    async def invalidate(self, tags: list[str]) -> int:
        if self.plugin.guard is None or not tags:
            return 0
        return await self.plugin.guard.call("invalidate", self.plugin.backend.delete_tags, tags) or 0  # type: ignore[union-attr]

    async def clear(self) -> bool:
        """``await app.clear_cache()``: drop every entry of this app's cache."""
        if self.plugin.guard is None:
            return True
        try:
            await self.plugin.backend.clear()  # type: ignore[union-attr]
        except Exception as error:
            self.plugin.guard.failed("clear", error)
            return False
        return True

    def clear_sync(self) -> bool:
        """``app.clear_cache_sync()``: :meth:`clear` for code without an event loop."""
        if self.plugin.backend is None:
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if isinstance(self.plugin.backend, SimpleCache):
                self.plugin.backend.clear_now()
                return True
            raise RuntimeError("clear_cache_sync() cannot run inside an event loop; use await app.clear_cache()")
        return asyncio.run(self.clear())
