"""The aeros-cache plugin: ``cache=`` keyword, ``@app.cache(...)``, hits before the view and at the edge.

Request path (only when ``cache=`` is set):

* ASGI edge (``AsgiWrapper`` at ``Stage.STORE``): a GET/HEAD whose ``(method, path)`` is in the
  in-process index of cached views is looked up before Quart builds a request context; a
  fresh hit is sent from there. Anything else (miss, stale, unknown path) falls through, with
  the lookup left in the scope so the Quart path does not repeat it.
* Quart path (``BeforeRequest`` at ``Stage.STORE``): for a cached view, apply the safety rules,
  look up, answer hits (304 for a matching ``If-None-Match``), coordinate concurrent misses
  (one view run per key per process) and stale-while-revalidate.
* Store (``AfterResponse`` at ``Stage.STORE``): keep the response the view made when the rules
  allow it, before headers and compression are added by the steps above STORE.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from quart import Response
from quart.globals import _cv_request
from quart.wrappers.response import DataBody
from werkzeug.datastructures import Headers

from aeros_core.hookspecs import hookimpl
from aeros_core.options import Option
from aeros_core.pipeline import AfterResponse, ASGIApp, AsgiWrapper, BeforeRequest, Stage

from .backends import CacheBackend, SimpleCache
from .entry import UNSTORED_HEADERS, Entry, etag_matches, strong_etag, vary_marker
from .key import base_key, prefix_key, request_facts, variant_key
from .flight import UNAVAILABLE, FleetLocks
from .guard import Guard
from .tags import check_tag, evaluate_tags
from .index import EdgeIndex

log = logging.getLogger("aeros.cache")

ATTRIBUTE = "_aeros_cache"  #: the ViewOptions of a cached view function
SCOPE_KEY = "aeros_cache.lookup"  #: (key, entry) left in the ASGI scope by the edge
STATE_KEY = "aeros_cache.state"  #: the request's _State, in the ASGI scope (cached views only)
REFRESH_KEY = "aeros_cache.refresh"  #: marks the background request of stale-while-revalidate
LEADER_WAIT = 30.0  #: how long concurrent misses wait for the request running the view
_NOT_STORED = frozenset({"private", "no-store", "no-cache"})


@dataclass(frozen=True)
class ViewOptions:
    """What ``@app.cache(...)`` said about one view."""

    view_id: str
    timeout: float | None
    key_prefix: str | Callable[[], str]
    unless: Callable[..., Any] | None
    forced_update: Callable[[], Any] | None
    response_filter: Callable[[Any], Any] | None
    query_string: bool
    cache_none: bool
    ignore_credentials: bool
    stale_while_revalidate: float | None
    unless_takes_args: bool = False
    stale_if_error: float | None = None
    tags: tuple[str | Callable[..., Any], ...] = ()
    surrogate_keys: bool = False

    @property
    def edge_ok(self) -> bool:
        """Whether a hit may be served without a request context (no callbacks to run)."""
        return self.unless is None and self.forced_update is None and not callable(self.key_prefix)

    def prefix_for(self, path: str) -> str:
        prefix = self.key_prefix
        if callable(prefix):
            return str(prefix())
        return prefix % path if "%s" in prefix else prefix


class _State:
    """One request's dealings with the cache (kept in the ASGI scope, under ``STATE_KEY``)."""

    __slots__ = (
        "options",
        "key",
        "store",
        "future",
        "flight",
        "returned_none",
        "view_ran",
        "lock",
        "stale",
        "tags",
        "if_none_match",
    )

    def __init__(self, options: ViewOptions) -> None:
        self.options = options
        self.lock: str | None = None  #: the token of the fleet lock this request holds
        self.stale: Entry | None = None  #: an expired entry that stale_if_error may still serve
        self.tags: list[str] = []
        self.if_none_match: bytes | None = None
        self.key: str | None = None
        self.store = False
        self.future: asyncio.Future | None = None
        self.flight: tuple[int, str] | None = None
        self.returned_none = False
        self.view_ran = False


def _cache_control_directives(response: Any) -> set[str]:
    values = response.headers.getlist("Cache-Control")
    return {part.split("=", 1)[0].strip().lower() for value in values for part in value.split(",") if part.strip()}


def _vary_names(response: Any) -> list[str]:
    names: list[str] = []
    for value in response.headers.getlist("Vary"):
        for name in value.split(","):
            name = name.strip().lower()
            if name and name not in names:
                names.append(name)
    return names


class AppCache:
    """``app.cache``: the ``@app.cache(...)`` decorator plus ``delete``/``clear``.

    With ``cache=None`` the decorator returns views unchanged, so code written for a cache
    still runs without one.
    """

    def __init__(self, plugin: "CachePlugin") -> None:
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
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
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
            return plugin.wrap_view(view, options)

        return decorator

    async def delete(self, view_or_key: Callable[..., Any] | str) -> int:
        """Drop the entries of one cached view (the function, or its endpoint name) or of one
        key prefix (``"view//report"``); returns how many entries went (``0`` if the backend failed)."""
        return await self._plugin.delete(view_or_key)

    async def clear(self) -> bool:
        """Drop every entry; ``False`` if the backend failed (logged)."""
        return await self._plugin.clear()

    async def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry stored with one of ``tags``, for every process and instance sharing
        the backend; returns how many went (``0`` if the backend failed, logged)."""
        return await self._plugin.invalidate([check_tag(tag) for tag in tags])


class CachePlugin:
    """One instance per ``WebServer``: all cache state of that app lives here."""

    def __init__(self) -> None:
        self.app: Any = None
        self.stats = {"edge_hits": 0, "hits": 0, "stale": 0, "misses": 0, "stores": 0}
        self.backend: CacheBackend | None = None
        self.guard: Guard | None = None
        self.cache: AppCache = AppCache(self)
        self.views: dict[str, ViewOptions] = {}
        self.index = EdgeIndex()
        #: endpoint -> its ViewOptions, or None for an endpoint whose view is not cached;
        #: learnt once per endpoint, so requests of views the cache does not touch cost one lookup
        self.endpoints: dict[Any, ViewOptions | None] = {}
        self.inflight: dict[tuple[int, str], asyncio.Future] = {}
        self.edge_active = False
        self.locks: FleetLocks | None = None
        #: keys being refreshed in the background by this process, and their tasks
        self.refreshing: dict[str, asyncio.Task[Any]] = {}

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
        app.clear_cache = self.clear
        app.clear_cache_sync = self.clear_sync

    # --- factories (once per app) -----------------------------------------------------------

    @hookimpl
    def aeros_before_request(self, app: Any) -> BeforeRequest | None:
        if self.backend is None:
            return None
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
        reason = self._edge_obstacle()
        if reason:
            log.info("cache hits are answered through Quart, not at the ASGI edge: %s", reason)
            return None
        self.edge_active = True
        return AsgiWrapper(Stage.STORE, self._wrap_edge)

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
            state: _State | None = None if scope is None else scope.get(STATE_KEY)
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
        state = _State(options)
        scope[STATE_KEY] = state
        view = self.app.view_functions.get(endpoint)
        headers = scope["headers"]
        host, credentials, if_none_match = request_facts(headers)
        if credentials and not options.ignore_credentials:
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
            self._remember(method, scope["path"], options, request)
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
                entry = await self._lookup(key, headers)
            if entry is not None and (not credentials or entry.flags.get("ignore_credentials")):
                if entry.is_fresh(now) or (method == "HEAD" and entry.is_usable(now)):
                    return self._hit(entry, now, if_none_match)
                if entry.is_usable(now):  # stale-while-revalidate: the old entry now, a refresh behind
                    self._refresh_in_background(scope, key)
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
                if mine == stored_key and (not credentials or entry.flags.get("ignore_credentials")):
                    return self._hit(entry, time.time(), if_none_match)
            state.store = True
            return None
        self._lead(state, flight)
        if not forced and self.locks is not None and self.locks.active:
            return await self._lead_fleet(state, key, headers, credentials)
        return None

    async def _lead_fleet(self, state: _State, key: str, headers: Any, credentials: bool) -> Response | None:
        """Lead across processes: take the key's lock, or wait for its holder and serve its
        entry. ``None``: run the view (holding the lock, or without one if the backend fails)."""
        locks = self.locks
        assert locks is not None
        deadline = time.monotonic() + LEADER_WAIT
        while True:
            token = await locks.take(key)
            if token is UNAVAILABLE:
                return None
            if token is not None:
                state.lock = token
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not await locks.wait(key, left):
                return None
            entry = await self._lookup(key, headers)
            now = time.time()
            if entry is not None and entry.is_fresh(now) and (not credentials or entry.flags.get("ignore_credentials")):
                state.store = False
                self._release(state, (entry, key if not entry.vary else variant_key(key, entry.vary, headers)))
                return self._hit(entry, now, state.if_none_match)

    def _lead(self, state: _State, flight: tuple[int, str]) -> None:
        future = asyncio.get_running_loop().create_future()
        self.inflight[flight] = future
        state.future = future
        state.flight = flight
        state.store = True
        task = asyncio.current_task()
        if task is not None:  # a request that ends before answering (cancelled, failed) frees its key
            task.add_done_callback(lambda _task: self._release(state, None))

    def _release(self, state: _State | None, result: tuple[Entry, str] | None) -> None:
        """Wake the requests waiting for this one's answer (``None``: they run the view)."""
        if state is None:
            return
        if result is None and state.lock is not None:  # the view failed or the request ended
            token, state.lock = state.lock, None
            assert self.locks is not None and state.key is not None
            self.locks.give_back_soon(state.key, token)
        if state.future is None:
            return
        future, state.future = state.future, None
        if not future.done():
            future.set_result(result)
        if result is None and state.flight is not None:
            self._forget(state)

    def _forget(self, state: _State) -> None:
        flight, state.flight = state.flight, None
        if flight is not None and self.inflight.get(flight) is not None and self.inflight[flight].done():
            del self.inflight[flight]

    async def _lookup(self, key: str, headers: Any) -> Entry | None:
        guard = self.guard
        assert guard is not None
        entry = await guard.get(key)
        if entry is not None and entry.kind == "vary":
            entry = await guard.get(variant_key(key, entry.vary, headers))
        if entry is not None and entry.kind != "response":
            return None
        return entry

    def _hit(self, entry: Entry, now: float, if_none_match: bytes | None, stale: bool = False) -> Response:
        if if_none_match is not None and entry.etag and etag_matches(if_none_match, entry.etag):
            response = Response(
                b"",
                304,
                headers=Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in entry.not_modified_headers()]),
            )
            response.headers.pop("Content-Type", None)
            response.headers.pop("Content-Length", None)
        else:
            response = Response(entry.body, entry.status, headers=Headers(entry.headers))
        response.headers["Age"] = str(max(0, int(now - entry.created)))
        response.headers["X-Cache"] = "STALE" if stale else "HIT"
        self.stats["stale" if stale else "hits"] += 1
        return response

    def _stale_for_error(self, state: _State | None, error: str) -> Response | None:
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
        response.headers["X-Cache"] = "STALE"
        response.aeros_cache_stale = True  # type: ignore[attr-defined]
        return response

    # --- stale-while-revalidate: one background refresh per key ---------------------------------

    def _refresh_in_background(self, scope: Any, key: str) -> None:
        if key in self.refreshing:
            return
        task = asyncio.get_running_loop().create_task(self._refresh(dict(scope), key))
        self.refreshing[key] = task
        task.add_done_callback(lambda _task: self.refreshing.pop(key, None))

    async def _refresh(self, scope: dict, key: str) -> None:
        """Run the view for ``key`` through Quart, as a request of its own marked as a refresh
        (it skips the lookup and stores its answer); across processes, only the lock holder."""
        locks = self.locks
        assert locks is not None
        token = await locks.take(key) if locks.active else ""
        if token is None:
            return  # another process refreshes it
        token = None if token is UNAVAILABLE else token
        try:
            if token:  # another process may have refreshed it between our lookup and our lock
                entry = await self._lookup(key, scope["headers"])
                if entry is not None and entry.is_fresh(time.time()):
                    return
            scope.pop(STATE_KEY, None)
            scope.pop(SCOPE_KEY, None)
            scope[REFRESH_KEY] = True
            started = False
            never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            async def receive() -> dict:
                nonlocal started
                if not started:
                    started = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return await never  # no disconnect: Quart stops listening when the answer is done

            status: list[int] = []

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await self.app.asgi_app(scope, receive, send)
            if status and status[0] >= 500:
                log.warning("refreshing %.200s failed (status %s); the stale entry is kept", key, status[0])
        except Exception:
            log.exception("refreshing %.200s failed; the stale entry is kept", key)
        finally:
            if token:
                await locks.give_back(key, token)

    async def _after(self, response: Any) -> Any:
        scope: Any = _cv_request.get().request.scope
        state: _State | None = scope.get(STATE_KEY)
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
            if state.options.surrogate_keys and state.tags:
                response.headers["Surrogate-Key"] = " ".join(state.tags)
            if state.store and state.view_ran:
                entry = await self._entry_for(response, state)
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
                    token, state.lock = state.lock, None
                    assert self.locks is not None and state.key is not None
                    await self.locks.give_back(state.key, token)
        return response

    async def _entry_for(self, response: Any, state: _State) -> Entry | None:
        options = state.options
        if not isinstance(response, Response) or not isinstance(response.response, DataBody):
            return None  # streamed, file and werkzeug bodies are never stored
        if state.returned_none and not options.cache_none:
            return None
        status = response.status_code
        if options.response_filter is not None:
            accepted = options.response_filter(response)
            if inspect.isawaitable(accepted):
                accepted = await accepted
            if not accepted:
                return None
        elif not 200 <= status < 300 or status == 206:
            return None
        if "Set-Cookie" in response.headers:
            return None
        if _cache_control_directives(response) & _NOT_STORED:
            return None
        vary = _vary_names(response)
        if "*" in vary:
            return None
        body = response.response.data
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in UNSTORED_HEADERS]
        etag = response.headers.get("ETag")
        if not etag:
            etag = strong_etag(body)
            headers.append(("ETag", etag))
        now = time.time()
        timeout = options.timeout if options.timeout is not None else self.backend.default_timeout  # type: ignore[union-attr]
        expires = None if not timeout else now + timeout
        swr = options.stale_while_revalidate
        stale_until = expires + swr if expires is not None and swr else None
        flags: dict[str, Any] = {"ignore_credentials": options.ignore_credentials}
        if state.tags:
            flags["tags"] = state.tags
        return Entry(
            status=status,
            headers=headers,
            body=body,
            created=now,
            expires=expires,
            stale_until=stale_until,
            etag=etag,
            flags=flags,
            vary=tuple(vary),
        )

    async def _store(self, state: _State, result: tuple[Entry, str]) -> None:
        guard = self.guard
        assert guard is not None and state.key is not None
        entry, stored_key = result
        end = entry.stale_until or entry.expires
        if end is not None and entry.expires is not None and state.options.stale_if_error:
            end = max(end, entry.expires + state.options.stale_if_error)  # kept for stale_if_error
        ttl = None if end is None else max(1.0, end - time.time())
        if entry.vary:
            marker = vary_marker(entry.vary, entry.expires, entry.stale_until)
            if not await guard.set(state.key, marker, ttl):
                return
        if await guard.set(stored_key, entry, ttl):
            self.stats["stores"] += 1

    # --- ASGI edge ------------------------------------------------------------------------------

    def _edge_obstacle(self) -> str | None:
        """Why hits cannot skip Quart for this app (``None``: they can)."""
        app = self.app
        if app.url_map.host_matching or getattr(app, "subdomain_matching", False):
            return "the app routes by host"
        pipeline = app.request_pipeline
        for step in pipeline.before:
            if step.stage > Stage.STORE and not getattr(step.handler, "aeros_edge_safe", False):
                return f"a plugin answers requests before the cache ({step.handler!r})"
        for step in pipeline.after:
            if step.stage > Stage.STORE and not getattr(step.transform, "aeros_edge_safe", False):
                return f"a plugin changes responses after the cache ({step.transform!r})"
        return None

    def _request_functions(self, blueprints: Iterable[str]) -> bool:
        """Whether before/after-request functions (app-level or of these blueprints) apply."""
        app = self.app
        for name in (None, *blueprints):
            if app.before_request_funcs.get(name) or app.after_request_funcs.get(name):
                return True
        return False

    def _remember(self, method: str, path: str, options: ViewOptions, request: Any) -> None:
        index = self.index
        if index.data.get((method, path)) is options:
            return
        if self._request_functions(request.blueprints):
            return  # they may authenticate: hits must go through Quart
        index.add(method, path, options)

    def _wrap_edge(self, app: ASGIApp) -> ASGIApp:
        lookup = self.index.data.get
        stats = self.stats

        async def cache_edge(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                options = lookup((scope["method"], scope["path"]))
                if options is not None:
                    answer = await self._edge_lookup(options, scope)
                    if answer is not None:
                        stats["edge_hits"] += 1
                        await send(answer[0])
                        await send(answer[1])
                        return
            await app(scope, receive, send)

        return cache_edge

    async def _edge_lookup(self, options: ViewOptions, scope: dict) -> tuple[dict, dict] | None:
        """The two ASGI messages of a fresh hit, or ``None`` (the lookup is left in the scope)."""
        try:
            headers = scope["headers"]
            host, credentials, if_none_match = request_facts(headers)
            if credentials and not options.ignore_credentials:
                return None
            key = base_key(options.view_id, options.prefix_for(scope["path"]), scope, options.query_string, host)
            backend = self.backend
            if isinstance(backend, SimpleCache):
                entry = backend.get_now(key)
                if entry is not None and entry.kind == "vary":
                    entry = backend.get_now(variant_key(key, entry.vary, headers))
                if entry is not None and entry.kind != "response":
                    entry = None
            else:
                entry = await self._lookup(key, headers)
            now = time.time()
            if entry is None or not entry.is_fresh(now) or (credentials and not entry.flags.get("ignore_credentials")):
                scope[SCOPE_KEY] = (key, entry)
                return None
            extra = [(b"age", str(max(0, int(now - entry.created))).encode()), (b"x-cache", b"HIT")]
            if if_none_match is not None and entry.etag and etag_matches(if_none_match, entry.etag):
                return (
                    {"type": "http.response.start", "status": 304, "headers": entry.not_modified_headers() + extra},
                    {"type": "http.response.body", "body": b""},
                )
            body = b"" if scope["method"] == "HEAD" else entry.body
            return (
                {"type": "http.response.start", "status": entry.status, "headers": entry.raw_headers() + extra},
                {"type": "http.response.body", "body": body},
            )
        except Exception:
            log.exception("cache lookup at the ASGI edge failed; handing the request to Quart")
            return None

    # --- invalidation -----------------------------------------------------------------------------

    async def delete(self, view_or_key: Callable[..., Any] | str) -> int:
        if self.guard is None:
            return 0
        options = getattr(view_or_key, ATTRIBUTE, None)
        if options is None and isinstance(view_or_key, str):
            options = getattr(self.app.view_functions.get(view_or_key), ATTRIBUTE, None)
        if options is not None:
            prefixes = [options.view_id + "|"]
        elif isinstance(view_or_key, str):
            prefixes = [prefix_key(view_id, view_or_key) for view_id in self.views]
        else:
            raise ValueError(f"{view_or_key!r} is not a view decorated with @app.cache(...)")
        count = 0
        for prefix in prefixes:
            count += await self.guard.call("delete", self.backend.delete_prefix, prefix) or 0  # type: ignore[union-attr]
        return count

    async def invalidate(self, tags: list[str]) -> int:
        if self.guard is None or not tags:
            return 0
        return await self.guard.call("invalidate", self.backend.delete_tags, tags) or 0  # type: ignore[union-attr]

    async def clear(self) -> bool:
        """``await app.clear_cache()``: drop every entry of this app's cache."""
        if self.guard is None:
            return True
        try:
            await self.backend.clear()  # type: ignore[union-attr]
        except Exception as error:
            self.guard.failed("clear", error)
            return False
        return True

    def clear_sync(self) -> bool:
        """``app.clear_cache_sync()``: :meth:`clear` for code without an event loop."""
        if self.backend is None:
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if isinstance(self.backend, SimpleCache):
                self.backend.clear_now()
                return True
            raise RuntimeError("clear_cache_sync() cannot run inside an event loop; use await app.clear_cache()")
        return asyncio.run(self.clear())
