"""The aeros-cache plugin: the hooks, and the Quart path of a cached view.

The package by concern: ``key`` (cache keys), ``entry`` (stored responses, verified on read),
``rules`` (what may be read, served and stored: one implementation for both paths),
``backends/`` (memory, files, Redis; ``backends/workers`` shares SimpleCache invalidations
between workers), ``edge`` + ``index`` (hits at the ASGI edge), ``flight`` (single flight across
processes), ``refresh`` (stale-while-revalidate in the background), ``invalidation`` and
``tags``, ``guard`` (backend failures), ``app_cache`` (``@app.cache``), ``control``
(``CacheControl``).

Request path (only when ``cache=`` is set):

* ASGI edge (``AsgiWrapper`` at ``Stage.STORE``, :mod:`aeros_cache.edge`): fresh hits of known
  paths, before Quart builds a request context; anything else falls through, with the lookup
  left in the scope so the Quart path does not repeat it.
* Quart path (``BeforeRequest`` at ``Stage.STORE``): for a cached view, apply the rules, look
  up, answer hits (304 for a matching ``If-None-Match``), serve stale entries while refreshing,
  coordinate concurrent misses (per process with futures, across processes with the backend's
  lock).
* Store (``AfterResponse`` at ``Stage.STORE``): keep the response the view made when the rules
  allow it, before headers and compression are added by the steps above STORE; serve a stale
  entry instead of a 5xx when ``stale_if_error`` allows it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from quart import Response
from quart.globals import _cv_request
from werkzeug.datastructures import Headers

from aeros_core.hookspecs import hookimpl
from aeros_core.observe import listener
from aeros_core.options import Option
from aeros_core.pipeline import AfterResponse, AsgiWrapper, BeforeRequest, Stage

from .app_cache import AppCache
from .backends import CacheBackend
from .edge import Edge
from .entry import Entry, vary_marker
from .flight import UNAVAILABLE, FleetLocks
from .guard import Guard
from .index import EdgeIndex
from .invalidation import Invalidation
from .key import base_key, request_facts, variant_key
from .options import ATTRIBUTE, REFRESH_KEY, SCOPE_KEY, STATE_KEY, RequestState, ViewOptions
from .refresh import Refresher
from .rules import backend_ttl, bypasses, entry_for, hit, may_serve, response_entry
from .tags import evaluate_tags

log = logging.getLogger("aeros.cache")

LEADER_WAIT = 30.0  #: how long concurrent misses wait for the request running the view


class CachePlugin:
    """One instance per ``WebServer``: all cache state of that app lives here."""

    def __init__(self) -> None:
        self.app: Any = None
        self.stats = {"edge_hits": 0, "hits": 0, "stale": 0, "misses": 0, "stores": 0}
        #: the aeros_cache_event hook caller, or None when no plugin listens (metrics, tracing)
        self.observe: Callable[..., Any] | None = None
        self.backend: CacheBackend | None = None
        self.guard: Guard | None = None
        self.cache: AppCache = AppCache(self)
        self.views: dict[str, ViewOptions] = {}
        self.index = EdgeIndex()
        #: endpoint -> its ViewOptions, or None for an endpoint whose view is not cached;
        #: learnt once per endpoint, so requests of views the cache does not touch cost one lookup
        self.endpoints: dict[Any, ViewOptions | None] = {}
        self.inflight: dict[tuple[int, str], asyncio.Future[Any]] = {}
        self.edge_active = False
        self.locks: FleetLocks | None = None
        self.edge = Edge(self)
        self.refresher = Refresher(self)
        self.invalidation = Invalidation(self)

    # --- construction ---------------------------------------------------------------------

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [
            Option("cache", None, "server-side response cache: SimpleCache(), FileSystemCache(dir), RedisCache(...)")
        ]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        backend = options.get("cache")
        if backend is not None and not isinstance(backend, CacheBackend):
            raise TypeError(
                f"cache= takes SimpleCache(), FileSystemCache(directory) or RedisCache(...), got {backend!r}"
            )
        self.app = app
        self.backend = backend
        self.guard = Guard(backend) if backend is not None else None
        self.locks = FleetLocks(backend, self.guard) if backend is not None and self.guard is not None else None
        app.cache = self.cache
        app.clear_cache = self.invalidation.clear
        app.clear_cache_sync = self.invalidation.clear_sync

    # --- factories (once per app) -----------------------------------------------------------

    @hookimpl
    def aeros_before_request(self, app: Any) -> BeforeRequest | None:
        if self.backend is None:
            return None
        self.observe = listener(app, "aeros_cache_event")  # built once all plugins read their options
        return BeforeRequest(Stage.STORE, self._before)

    @hookimpl
    def aeros_after_response(self, app: Any) -> AfterResponse | None:
        if self.backend is None:
            return None
        return AfterResponse(Stage.STORE, self._after)

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper | None:
        if self.backend is None or not self.cache.edge:
            return None
        if not any(options.edge_ok for options in self.views.values()):
            return None  # nothing could ever be answered there: no layer at all
        reason = self.edge.obstacle()
        if reason:
            log.info("cache hits are answered through Quart, not at the ASGI edge: %s", reason)
            return None
        self.edge_active = True
        return AsgiWrapper(Stage.STORE, self.edge.wrap)

    @hookimpl
    def aeros_startup(self, app: Any) -> Any:
        if self.guard is None:
            return None
        return self.guard.call("startup", self.backend.startup)  # type: ignore[union-attr]

    @hookimpl
    def aeros_shutdown(self, app: Any) -> Any:
        if self.backend is None:
            return None
        return self._shutdown()

    async def _shutdown(self) -> None:
        try:  # always, even while the backend is considered down: the pool must be closed
            await self.backend.shutdown()  # type: ignore[union-attr]
        except Exception as error:
            log.warning("closing the cache backend %s failed: %r", self.backend.describe(), error)  # type: ignore[union-attr]

    # --- the decorated view -----------------------------------------------------------------

    def wrap_view(self, view: Callable[..., Any], options: ViewOptions) -> Callable[..., Any]:
        is_async = inspect.iscoroutinefunction(view)
        app = self.app

        @functools.wraps(view)
        async def cached_view(*args: Any, **kwargs: Any) -> Any:
            context = _cv_request.get(None)
            scope: Any = None if context is None else context.request.scope
            state: RequestState | None = None if scope is None else scope.get(STATE_KEY)
            if state is not None:
                state.view_ran = True
            try:
                if is_async:
                    result = await view(*args, **kwargs)
                else:
                    result = await app.ensure_async(view)(*args, **kwargs)
            except Exception as error:
                self._release(state, None)
                stale = self._stale_for_error(state, f"the view raised {type(error).__name__}: {error}")
                if stale is not None:
                    return stale
                raise
            except BaseException:
                self._release(state, None)
                raise
            if result is None and state is not None:
                state.returned_none = True
            return result

        setattr(cached_view, ATTRIBUTE, options)
        return cached_view

    # --- Quart path ---------------------------------------------------------------------------

    def _options_for(self, endpoint: Any) -> ViewOptions | None:
        options: ViewOptions | None = getattr(self.app.view_functions.get(endpoint), ATTRIBUTE, None)
        self.endpoints[endpoint] = options
        return options

    async def _before(self) -> Any:
        request = _cv_request.get().request
        rule = request.url_rule
        endpoint = None if rule is None else rule.endpoint
        try:
            options = self.endpoints[endpoint]
        except KeyError:
            options = self._options_for(endpoint)
        if options is None:
            return None
        scope: Any = request.scope
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return None
        state = RequestState(options)
        scope[STATE_KEY] = state
        view = self.app.view_functions.get(endpoint)
        headers = scope["headers"]
        host, credentials, if_none_match = request_facts(headers)
        if bypasses(options, credentials):
            return None
        if options.unless is not None:
            bypass = (
                options.unless(view, **(request.view_args or {})) if options.unless_takes_args else options.unless()
            )
            if inspect.isawaitable(bypass):
                bypass = await bypass
            if bypass:
                return None
        if self.edge_active and options.edge_ok:
            self.edge.remember(method, scope["path"], options, request)
        key = state.key = base_key(
            options.view_id, options.prefix_for(scope["path"]), scope, options.query_string, host
        )
        state.if_none_match = if_none_match
        if options.tags:
            try:
                state.tags = evaluate_tags(options.tags, request.view_args or {})
            except Exception:
                return None  # logged; the view answers, nothing is stored
        forced = bool(scope.get(REFRESH_KEY))
        if options.forced_update is not None and not forced:
            forced = options.forced_update()
            if inspect.isawaitable(forced):
                forced = await forced
        now = time.time()
        if not forced:
            stashed = scope.get(SCOPE_KEY)
            if stashed is not None and stashed[0] == key:
                entry = stashed[1]
            else:
                entry = await self.lookup(key, headers)
            if entry is not None and may_serve(entry, credentials):
                if entry.is_fresh(now) or (method == "HEAD" and entry.is_usable(now)):
                    return self._hit(entry, now, if_none_match)
                if entry.is_usable(now):  # stale-while-revalidate: the old entry now, a refresh behind
                    self.refresher.start(scope, key)
                    return self._hit(entry, now, if_none_match, stale=True)
                state.stale = entry
        if method == "HEAD":  # a HEAD miss runs the view; only GET answers are stored
            return None
        flight = (id(asyncio.get_running_loop()), key)
        future = self.inflight.get(flight)
        if future is not None and not forced:
            try:
                result = await asyncio.wait_for(asyncio.shield(future), LEADER_WAIT)
            except asyncio.TimeoutError:
                result = None
            if result is not None:
                entry, stored_key = result
                mine = key if not entry.vary else variant_key(key, entry.vary, headers)
                if mine == stored_key and may_serve(entry, credentials):
                    return self._hit(entry, time.time(), if_none_match)
            state.store = True
            return None
        self._lead(state, flight)
        if not forced and self.locks is not None and self.locks.active:
            return await self._lead_fleet(state, key, headers, credentials)
        return None

    async def _lead_fleet(self, state: RequestState, key: str, headers: Any, credentials: bool) -> Response | None:
        """Lead across processes: take the key's lock, or wait for its holder and serve its
        entry. ``None``: run the view (holding the lock, or without one if the backend fails,
        or if the holder left no entry: an answer that cannot be stored, or a holder that died;
        as with followers in a process, no request then waits for another's view run)."""
        locks = self.locks
        assert locks is not None
        token = await locks.take(key)
        if token is UNAVAILABLE:
            return None
        if token is None:
            if not await locks.wait(key, LEADER_WAIT):
                return None
            entry = await self.lookup(key, headers)
            now = time.time()
            if entry is not None and entry.is_fresh(now) and may_serve(entry, credentials):
                state.store = False
                self._release(state, (entry, key if not entry.vary else variant_key(key, entry.vary, headers)))
                return self._hit(entry, now, state.if_none_match)
            token = await locks.take(key)  # free now: take it, so that later arrivals wait for this run
            if token is UNAVAILABLE or token is None:
                return None
        state.lock = token
        state.renewal = locks.keep(key, token)  # the view may outlast lock_timeout
        return None

    def _lead(self, state: RequestState, flight: tuple[int, str]) -> None:
        future = asyncio.get_running_loop().create_future()
        self.inflight[flight] = future
        state.future = future
        state.flight = flight
        state.store = True
        task = asyncio.current_task()
        if task is not None:  # a request that ends before answering (cancelled, failed) frees its key
            task.add_done_callback(lambda _task: self._release(state, None))

    def _release(self, state: RequestState | None, result: tuple[Entry, str] | None) -> None:
        """Wake the requests waiting for this one's answer (``None``: they run the view)."""
        if state is None:
            return
        if result is None and state.lock is not None:  # the view failed or the request ended
            token = self._drop_lock(state)
            assert self.locks is not None and state.key is not None
            self.locks.give_back_soon(state.key, token)
        if state.future is None:
            return
        future, state.future = state.future, None
        if not future.done():
            future.set_result(result)
        if result is None and state.flight is not None:
            self._forget(state)

    @staticmethod
    def _drop_lock(state: RequestState) -> str:
        """The token of the lock ``state`` holds, no longer renewed nor held by ``state``."""
        token, state.lock = state.lock, None
        assert token is not None
        if state.renewal is not None:
            renewal, state.renewal = state.renewal, None
            renewal.stop()
        return token

    def _forget(self, state: RequestState) -> None:
        flight, state.flight = state.flight, None
        if flight is not None and self.inflight.get(flight) is not None and self.inflight[flight].done():
            del self.inflight[flight]

    async def lookup(self, key: str, headers: Any) -> Entry | None:
        guard = self.guard
        assert guard is not None
        entry = await guard.get(key)
        if entry is not None and entry.kind == "vary":
            entry = await guard.get(variant_key(key, entry.vary, headers))
        return response_entry(entry)

    def _hit(self, entry: Entry, now: float, if_none_match: bytes | None, stale: bool = False) -> Response:
        status, headers, body = hit(entry, now, if_none_match, head=False, stale=stale)
        response = Response(
            body, status, headers=Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers])
        )
        if status == 304:  # Quart's defaults, which a 304 does not carry
            response.headers.pop("Content-Type", None)
            response.headers.pop("Content-Length", None)
        result = "stale" if stale else "hit"
        self.stats["stale" if stale else "hits"] += 1
        if self.observe is not None:
            self.observe(app=self.app, scope=_cv_request.get().request.scope, result=result)
        return response

    def _stale_for_error(self, state: RequestState | None, error: str) -> Response | None:
        """The stale entry for a failed view, if ``stale_if_error`` allows it (RFC 5861)."""
        if state is None or state.stale is None or state.options.stale_if_error is None:
            return None
        entry, now = state.stale, time.time()
        if entry.expires is None or now > entry.expires + state.options.stale_if_error:
            return None
        state.store = False
        state.stale = None
        log.error("%s; serving the stale entry of %.200s (stale_if_error)", error, state.key)
        response = self._hit(entry, now, state.if_none_match, stale=True)
        response.aeros_cache_stale = True  # type: ignore[attr-defined]
        return response

    async def _after(self, response: Any) -> Any:
        scope: Any = _cv_request.get().request.scope
        state: RequestState | None = scope.get(STATE_KEY)
        if state is None:
            return response
        if getattr(response, "aeros_cache_stale", False):
            return response
        if response.status_code >= 500:
            stale = self._stale_for_error(state, f"the view answered {response.status_code}")
            if stale is not None:
                self._release(state, None)
                return stale
        result: tuple[Entry, str] | None = None
        try:
            response.headers["X-Cache"] = "MISS"
            self.stats["misses"] += 1
            if self.observe is not None:
                self.observe(app=self.app, scope=scope, result="miss")
            if state.options.surrogate_keys and state.tags:
                response.headers["Surrogate-Key"] = " ".join(state.tags)
            if state.store and state.view_ran:
                entry = await entry_for(response, state, self.backend.default_timeout)  # type: ignore[union-attr]
                if entry is not None:
                    if "ETag" not in response.headers:
                        response.headers["ETag"] = entry.etag
                    request_scope: Any = _cv_request.get().request.scope
                    key = state.key
                    assert key is not None
                    stored_key = key if not entry.vary else variant_key(key, entry.vary, request_scope["headers"])
                    result = (entry, stored_key)
        except Exception:
            log.exception("could not prepare a response for the cache; it is served uncached")
            result = None
        self._release(state, result)
        if result is not None:
            try:
                await self._store(state, result)
            finally:
                self._forget(state)
                if state.lock is not None:  # after the store: the woken waiters find the entry
                    token = self._drop_lock(state)
                    assert self.locks is not None and state.key is not None
                    await self.locks.give_back(state.key, token)
        return response

    async def _store(self, state: RequestState, result: tuple[Entry, str]) -> None:
        guard = self.guard
        assert guard is not None and state.key is not None
        entry, stored_key = result
        ttl = backend_ttl(entry, state.options, time.time())
        if entry.vary:
            marker = vary_marker(entry.vary, entry.expires, entry.stale_until)
            if not await guard.set(state.key, marker, ttl):
                return
        if await guard.set(stored_key, entry, ttl):
            self.stats["stores"] += 1
