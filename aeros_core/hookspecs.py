"""Every hook an aeros plugin can implement.

All hooks are synchronous pluggy hooks in the project ``"aeros"``. Hooks on the request path
are *factories*: the core calls them **once per app** (at the first ASGI call, or when a
server starts) and composes what they return into fixed chains. Nothing here is called per
request, so a plugin that implements none of them costs nothing on the request path.

Order is decided by :class:`aeros_core.pipeline.Stage`, never by registration order: a lower
stage sits nearer the view. See ``docs/plugins.md`` for a worked example of each hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .app import WebServer
    from .options import Option
    from .pipeline import AfterResponse, AsgiWrapper, BeforeRequest
    from .runner.backend import ServerBackend
    from .runner.settings import ServerSettings

hookspec = pluggy.HookspecMarker("aeros")
hookimpl = pluggy.HookimplMarker("aeros")


# --- construction -------------------------------------------------------------------------


@hookspec
def aeros_options() -> Iterable[Option]:
    """Declare the ``WebServer(...)`` keywords this plugin accepts.

    Called once per app during ``WebServer.__init__``, before :func:`aeros_app_init`.
    Return an iterable of :class:`aeros_core.options.Option` (name, default, help). A keyword
    that no plugin declares makes ``WebServer(...)`` raise ``UnknownOptionError``; two plugins
    declaring the same keyword is a ``PluginLoadError``. Stage: construction. Sync.
    """


@hookspec
def aeros_app_init(app: WebServer, options: Mapping[str, Any]) -> None:
    """Wire the plugin into a freshly built app.

    Called once per app at the end of ``WebServer.__init__``. ``options`` maps every declared
    keyword to its value (the user's, or the declared default). Add routes, decorators
    (``app.cache``), error handlers, ``before_serving`` functions; keep per-app state on the
    plugin instance (one instance per ``WebServer``) or in ``app.extensions``, never in module
    globals. Return value ignored. Stage: construction. Sync.
    """


# --- request path (factories, called once per app) ------------------------------------------


@hookspec
def aeros_before_request(
    app: WebServer,
) -> BeforeRequest | Iterable[BeforeRequest] | None:
    """Return request steps that may answer a request before its view runs.

    Called once per app when the pipeline is built. Each :class:`~aeros_core.pipeline.BeforeRequest`
    holds a ``stage`` and an ``async def handler() -> response value | None`` that runs inside
    the request context, after routing succeeded and after the app's own ``before_request``
    functions, just before the view. Steps run from the highest stage down; the first that
    returns something other than ``None`` answers the request (a cache hit, a CORS preflight),
    the view does not run, and the answer continues through the response steps whose stage is
    *above* the answering step's stage. Return ``None`` to add nothing. Sync (the handler is async).
    """


@hookspec
def aeros_after_response(
    app: WebServer,
) -> AfterResponse | Iterable[AfterResponse] | None:
    """Return response steps that transform every routed response, in stage order.

    Called once per app when the pipeline is built. Each :class:`~aeros_core.pipeline.AfterResponse`
    holds a ``stage`` and an ``async def transform(response) -> response``. Steps run in
    ascending stage after the app's own ``after_request`` functions and the session save, on
    views, error pages and 404s alike: STORE (the cache sees the body the view made) <
    HEADERS < ENCODE (compression last). Return ``None`` to add nothing. Sync.
    """


@hookspec
def aeros_asgi_wrapper(app: WebServer, settings: ServerSettings) -> AsgiWrapper | Iterable[AsgiWrapper] | None:
    """Return ASGI middleware factories that wrap the app at the edge.

    Called once per served app (once per server started by the runner, or once for an app
    served by an external ASGI server, with ``settings.server == "external"``). Each
    :class:`~aeros_core.pipeline.AsgiWrapper` holds a ``stage`` and ``wrap(asgi_app) -> asgi_app``.
    Wrappers are composed with the lowest stage innermost, so an OBSERVE wrapper (access log)
    sees everything and a HEADERS wrapper adds headers to a LIMIT 503. A wrapper can answer
    before Quart builds a request context: the cheapest place for a cache hit. Sync.
    """


@hookspec
def aeros_access_log_fields(
    app: WebServer, settings: ServerSettings
) -> Mapping[str, Callable[[dict[str, Any]], Any]] | None:
    """Contribute fields to the access log: ``{"name": getter}``.

    Called once per served app, when the access log is built (only if the access log is on).
    Each ``getter(scope)`` is called once per logged request, after the response was sent,
    in the request's context (context variables set by an ASGI wrapper above
    ``Stage.OBSERVE`` are visible; values an inner wrapper wants logged go in the scope, e.g.
    ``scope["extensions"]["myplugin"]``). It returns a JSON-serialisable value or None. The
    field appears in ``access_log_format="json"`` lines under its name, and as the
    ``%(name)s`` atom of a template (None is written ``-``). The core contributes
    ``request_id``. Names must not shadow the built-in fields. Stage: OBSERVE. Sync.
    """


# --- server -------------------------------------------------------------------------------


@hookspec
def aeros_server_config(app: WebServer, settings: ServerSettings) -> None:
    """Adjust the server settings before a server starts.

    Called once per ``app.run(...)`` / ``app.run_in_thread(...)`` in the process that creates
    the sockets, after the keywords of ``run`` were applied and before any socket is bound or
    worker started. Mutate ``settings`` in place (e.g. ``settings.include_server_header``,
    ``settings.backend_options["..."]``). Return value ignored. Sync.
    """


@hookspec(firstresult=True)
def aeros_server_backend(name: str) -> ServerBackend | None:
    """Provide the server backend called ``name`` (``app.run(server=name)``).

    Return a :class:`~aeros_core.runner.backend.ServerBackend` whose ``serve(app, settings,
    sockets, shutdown_trigger)`` serves the ASGI app on the listening sockets the runner made,
    until ``shutdown_trigger()`` returns, then finishes requests in flight within
    ``settings.graceful_timeout``. Return ``None`` for names you do not serve. The first
    non-``None`` answer wins. The built-in plugin answers ``"hypercorn"``. Sync.
    """


@hookspec
def aeros_startup(app: WebServer) -> Any | None:
    """Open per-process resources (connection pools) when serving starts.

    Called in each serving process (each worker) during ASGI lifespan startup, before the
    first request, in the event loop that will serve requests. May return an awaitable, which
    is awaited. Also runs for ``app.test_client()`` when the test uses ``app.test_app()``.
    """


@hookspec
def aeros_shutdown(app: WebServer) -> Any | None:
    """Close what :func:`aeros_startup` opened.

    Called in each serving process during ASGI lifespan shutdown, after requests in flight
    finished. May return an awaitable, which is awaited. Runs even if another plugin's
    shutdown failed (failures are logged).
    """


# --- observation events (called by the plugin that sees the event, only when implemented) ----


@hookspec
def aeros_cache_event(app: WebServer, scope: Mapping[str, Any], result: str) -> None:
    """Learn how the cache answered one request: ``result`` is ``"hit"``, ``"stale"`` or ``"miss"``.

    Called by aeros-cache for every request to a cached view: ``"hit"`` when a fresh stored entry
    answered it (at the ASGI edge or before the view, 304s included), ``"stale"`` when an expired
    entry answered it (``stale_while_revalidate``, ``stale_if_error``), ``"miss"`` when the view
    ran. ``scope`` is the request's ASGI scope (the same dict the ASGI wrappers see, so a
    wrapper can keep per-request state in it). Called in the serving process, in the event
    loop, on the request path: keep it to a few hundred nanoseconds and never block or raise.
    The emitter looks the implementations up once (:func:`aeros_core.observe.listener`), so
    with no implementation the request pays nothing. Return value ignored. Sync.
    """


@hookspec
def aeros_compress_event(
    app: WebServer, scope: Mapping[str, Any], encoding: str, bytes_in: int, bytes_out: int
) -> None:
    """Learn that one response body was content-coded.

    Called by aeros-compress once per encoded response, when its last byte was encoded:
    ``encoding`` is the chosen content-coding (``"gzip"``, ``"br"``, ``"zstd"``), ``bytes_in``
    the size of the body the app sent, ``bytes_out`` the size sent to the client. Responses
    left in identity are not reported. ``scope`` is the request's ASGI scope. Called in the
    serving process, in the event loop, on the request path: keep it cheap, never block or
    raise; with no implementation the emitter pays nothing. Return value ignored. Sync.
    """


@hookspec
def aeros_worker_event(app: WebServer, event: str, reason: str, pid: int) -> None:
    """Learn about a worker process of ``app.run(workers=N)``: ``event`` is ``"replaced"``.

    Called in the supervisor (the process that created the sockets, where
    :func:`aeros_server_config` ran), never in a worker, after the worker with process id
    ``pid`` ended and a replacement was started. ``reason`` is a short fixed word, fit for a
    metric label: ``"exited"`` (it exited on its own), ``"killed"`` (a signal ended it); a
    supervisor that recycles or times out workers reports its own word (``"timeout"``,
    ``"max_requests"``). An exception raised here is logged and ignored. Return value ignored.
    Sync.
    """
