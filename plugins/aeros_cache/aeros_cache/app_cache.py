"""``app.cache``: the ``@app.cache(...)`` decorator and the invalidation API."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .backends import CacheBackend
from .options import ViewOptions
from .tags import check_tag

if TYPE_CHECKING:
    from .plugin import CachePlugin

#: a view: ``@app.cache(...)`` returns it with its own signature (the wrapper is ``functools.wraps``'s)
View = TypeVar("View", bound=Callable[..., Any])


class AppCache:
    """``app.cache``: the ``@app.cache(...)`` decorator plus ``delete``/``clear``.

    With ``cache=None`` the decorator returns views unchanged, so code written for a cache
    still runs without one.
    """

    def __init__(self, plugin: CachePlugin) -> None:
        self._plugin = plugin
        #: serve hits at the ASGI edge when the app allows it (read when a server starts)
        self.edge = True
        #: counters of this process: ``edge_hits``, ``hits`` (through Quart), ``misses``, ``stores``
        self.stats: dict[str, int] = plugin.stats

    @property
    def backend(self) -> CacheBackend | None:
        return self._plugin.backend

    def __call__(
        self,
        timeout: float | None = None,
        key_prefix: str | Callable[[], str] = "view/%s",
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[[], Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        query_string: bool = True,
        cache_none: bool = False,
        *,
        ignore_credentials: bool = False,
        stale_while_revalidate: float | None = None,
        stale_if_error: float | None = None,
        tags: Iterable[str | Callable[..., Any]] = (),
        surrogate_keys: bool = False,
        hash_method: Any = None,
    ) -> Callable[[View], View]:
        """Cache the responses of the decorated view (put it *below* ``@app.route``).

        Args:
            timeout: seconds an entry stays fresh; ``None`` takes the backend's ``default_timeout``,
                ``0`` means until deleted.
            key_prefix: ``"view/%s"`` (``%s`` is the path) or a callable returning the key
                (called in the request context).
            unless: callable; when it returns true the cache is bypassed for this request.
            forced_update: callable; when it returns true the view runs and its answer replaces the entry.
            response_filter: callable taking the response; only responses it accepts are stored
                (replaces the default "2xx only" rule; the other safety rules still apply).
            query_string: key on the normalised (sorted) query string; ``False`` keys on the path alone.
            cache_none: store responses of a view that returned ``None`` (kept for compatibility:
                Quart turns ``None`` into a 500, which is not stored).
            ignore_credentials: also cache and serve requests carrying ``Authorization`` or
                ``Cookie``: the one stored answer goes to every caller, so use it only for views
                whose answer does not depend on who asks.
            stale_while_revalidate: seconds after expiry during which the old entry is served at
                once while one background refresh per key (across processes sharing the backend)
                runs the view; a failed refresh keeps the old entry.
            stale_if_error: seconds after expiry during which the old entry is served when the
                view raises or answers 5xx (RFC 5861); the error is logged.
            tags: strings, or callables taking the view's arguments and returning a string or a
                list of strings; ``await app.cache.invalidate(tags=[...])`` drops their entries.
            surrogate_keys: send the tags as a ``Surrogate-Key`` header (for CDNs).
            hash_method: accepted for compatibility with the original Aeros; unused.
        """
        plugin = self._plugin
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 seconds (0 = never expires)")
        if stale_while_revalidate is not None and stale_while_revalidate < 0:
            raise ValueError("stale_while_revalidate must be >= 0 seconds")
        if stale_if_error is not None and stale_if_error < 0:
            raise ValueError("stale_if_error must be >= 0 seconds")
        tags = tuple(tags)
        for tag in tags:
            if not callable(tag):
                check_tag(tag)

        def decorator(view: View) -> View:
            if plugin.backend is None:
                return view
            unless_takes_args = False
            if unless is not None:
                try:
                    unless_takes_args = bool(inspect.signature(unless).parameters)
                except (TypeError, ValueError):
                    unless_takes_args = False
            options = ViewOptions(
                view_id=f"{view.__module__}.{view.__qualname__}",
                timeout=timeout,
                key_prefix=key_prefix,
                unless=unless,
                forced_update=forced_update,
                response_filter=response_filter,
                query_string=bool(query_string),
                cache_none=bool(cache_none),
                ignore_credentials=bool(ignore_credentials),
                stale_while_revalidate=stale_while_revalidate,
                unless_takes_args=unless_takes_args,
                stale_if_error=stale_if_error,
                tags=tags,
                surrogate_keys=bool(surrogate_keys),
            )
            plugin.views[options.view_id] = options
            plugin.endpoints.clear()  # re-learnt on the next request of each endpoint
            return cast(View, plugin.wrap_view(view, options))

        return decorator

    async def delete(self, view_or_key: Callable[..., Any] | str) -> int:
        """Drop the entries of one cached view (the function, or its endpoint name) or of one
        key prefix (``"view//report"``); returns how many entries went (``0`` if the backend failed)."""
        return await self._plugin.invalidation.delete(view_or_key)

    async def clear(self) -> bool:
        """Drop every entry; ``False`` if the backend failed (logged)."""
        return await self._plugin.invalidation.clear()

    async def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry stored with one of ``tags``, for every process and instance sharing
        the backend; returns how many went (``0`` if the backend failed, logged)."""
        return await self._plugin.invalidation.invalidate([check_tag(tag) for tag in tags])
