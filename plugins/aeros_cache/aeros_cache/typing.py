"""Types for code that uses what aeros-cache adds to an app: ``app.cache``, ``app.clear_cache``.

The plugin sets those attributes when the app is created (``WebServer(__name__, cache=...)``), so
a type checker cannot see them on ``WebServer``. Two typed ways to reach them:

* :func:`cache_of` (an accessor): ``cache = cache_of(app)`` then ``@cache(timeout=60)`` below
  ``@app.route``, ``await cache.delete(view)``; it raises :class:`LookupError` for an app without
  the plugin (disabled, or another app class).
* :class:`CachingApp` (a Protocol): annotate a parameter or a variable that holds such an app
  (``def register(app: CachingApp) -> None``) to use ``app.cache``, ``app.clear_cache`` there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from .app_cache import AppCache

__all__ = ["AppCache", "CachingApp", "cache_of"]


@runtime_checkable
class CachingApp(Protocol):
    """An app with aeros-cache enabled: what the plugin adds to it."""

    cache: AppCache
    clear_cache: Callable[[], Awaitable[bool]]
    clear_cache_sync: Callable[[], bool]


def cache_of(app: Any) -> AppCache:
    """``app.cache``, typed: the ``@app.cache(...)`` decorator and the invalidation API of ``app``.

    Raises :class:`LookupError` when aeros-cache is not enabled on ``app`` (``disable_plugins``,
    or not an aeros app).
    """
    cache = getattr(app, "cache", None)
    if not isinstance(cache, AppCache):
        raise LookupError(
            f"{app!r} has no app.cache: the aeros-cache plugin is not enabled on it"
            " (WebServer(__name__, cache=SimpleCache()) enables it; disable_plugins must not name it)"
        )
    return cache
