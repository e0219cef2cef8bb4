"""``WebServer``: a Quart app with a plugin manager of its own and a server you start from Python."""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from quart import Quart
from quart.ctx import RequestContext
from quart.globals import _cv_request

from .asgi import LEAN_AVAILABLE, LeanHTTPConnection
from .asgi_app import ReplaceableASGIApp, innermost
from .options import Option, resolve
from .pipeline import ASGIApp, AsgiWrapper, RequestPipeline, collect, compose_asgi
from .plugins import PluginInfo, PluginLoadError, disabled_names, load_plugins, new_manager
from .request import Request
from .request_path import LeanRequestPath

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

    from .runner.settings import RunOptions, ServerSettings, ThreadRunOptions
    from .runner.thread import ThreadedServer

log = logging.getLogger("aeros")

_QUART_KEYWORDS = frozenset(inspect.signature(Quart.__init__).parameters) - {"self", "import_name"}
_CORE_KEYWORDS = ("host", "port", "logging_level", "disable_plugins", "plugins")
_ANSWERED_AT = "_aeros_answered_at"


class WebServer(LeanRequestPath):
    """A ``quart.Quart`` application whose features come from plugins.

    Keywords beyond Quart's own and the ones below are declared by plugins (``cache=``,
    ``compression=``, ``global_headers=``...); a keyword nobody declares raises
    :class:`~aeros_core.options.UnknownOptionError` naming the closest known keyword.

    Args:
        import_name: as for Quart, usually ``__name__``.
        args: Quart's positional arguments (``static_url_path``, ``static_folder``...).
        host: default interface for :meth:`run` (keyword only); loopback unless you say ``"0.0.0.0"``.
        port: default port for :meth:`run` (keyword only).
        logging_level: level of the app's logger (``"INFO"``, ``logging.DEBUG``...); when not
            given, the logger is Quart's (a level you set stays, ``DEBUG`` under ``app.debug``).
        disable_plugins: entry-point or distribution names not to load (adds to the
            ``AEROS_DISABLE_PLUGINS`` environment variable, comma-separated).
        plugins: extra plugin objects or classes to register, for plugins not packaged
            with an entry point.
    """

    request_class = Request  #: Quart's, with ``get_json`` answering 400 for every malformed body
    asgi_app = ReplaceableASGIApp()  # replaceable as in Quart, even once serving
    if LEAN_AVAILABLE:
        asgi_http_class = LeanHTTPConnection

    def __init__(
        self,
        import_name: str,
        *args: Any,
        host: str | None = None,
        port: int | None = None,
        logging_level: int | str | None = None,
        disable_plugins: Iterable[str] | None = None,
        plugins: Iterable[Any] = (),
        **options: Any,
    ) -> None:
        if len(args) >= 2 and isinstance(args[1], int):
            raise TypeError(
                f"WebServer({import_name!r}, {args[0]!r}, {args[1]!r}): host and port are keywords,"
                f" WebServer(__name__, host={args[0]!r}, port={args[1]!r}); positional arguments after"
                " the import name are Quart's (static_url_path, static_folder, ...)"
            )
        quart_keywords = {name: options.pop(name) for name in list(options) if name in _QUART_KEYWORDS}
        super().__init__(import_name, *args, **quart_keywords)
        #: the address given here counts as given in code for run() (over ``AEROS_HOST``/``AEROS_PORT``)
        self._given_address = {name: value for name, value in (("host", host), ("port", port)) if value is not None}
        self.host: str = host if host is not None else "127.0.0.1"
        self.port: int = port if port is not None else 8000
        self.logging_level = logging_level
        if logging_level is not None:  # otherwise Quart's: the user's level, DEBUG under app.debug
            self.logger.setLevel(logging_level)
        self._request_pipeline: RequestPipeline | None = None
        self._external_entry: ASGIApp | None = None

        self.plugin_manager = new_manager()
        self.plugins: list[PluginInfo] = load_plugins(self.plugin_manager, disabled_names(disable_plugins), plugins)
        declared = self._declared_options()
        self.options: Mapping[str, Any] = MappingProxyType(
            resolve(options, declared, other_known=[*_QUART_KEYWORDS, *_CORE_KEYWORDS])
        )
        self.plugin_manager.hook.aeros_app_init(app=self, options=self.options)

    def _declared_options(self) -> dict[str, Option]:
        declared: dict[str, Option] = {}
        owners: dict[str, str] = {}
        for impl in self.plugin_manager.hook.aeros_options.get_hookimpls():
            for option in cast("Iterable[Option]", impl.function() or ()):
                if option.name in declared or option.name in _CORE_KEYWORDS or option.name in _QUART_KEYWORDS:
                    other = owners.get(option.name, "the core")
                    raise PluginLoadError(
                        f"aeros plugin {impl.plugin_name!r} declares the keyword {option.name!r},"
                        f" already declared by {other}"
                    )
                declared[option.name] = option
                owners[option.name] = repr(impl.plugin_name)
        return declared

    # --- request path ----------------------------------------------------------------------

    @property
    def request_pipeline(self) -> RequestPipeline:
        """The before-request and after-response chains, built from the hooks on first use."""
        pipeline = self._request_pipeline
        if pipeline is None:
            pipeline = self._request_pipeline = RequestPipeline.build(self.plugin_manager.hook, self)
        return pipeline

    def asgi_entry(self, settings: ServerSettings) -> ASGIApp:
        """The ASGI callable a server should serve: ``asgi_app`` inside the plugins' wrappers."""
        self.request_pipeline  # noqa: B018  (the property builds the pipeline once, before the first request)
        wrappers = collect(self.plugin_manager.hook.aeros_asgi_wrapper(app=self, settings=settings), AsgiWrapper)
        return compose_asgi(innermost(self), wrappers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        entry = self._external_entry
        if entry is None:  # a replaced ``asgi_app`` is honoured by ReplaceableASGIApp, also after this
            from .runner.settings import ServerSettings

            entry = self._external_entry = self.asgi_entry(ServerSettings.external(self))
        await entry(scope, receive, send)

    async def dispatch_request(self, request_context: RequestContext | None = None) -> Any:
        before = self.request_pipeline.before
        if before:
            context = request_context or _cv_request.get()
            if context.request.routing_exception is None:
                for step in before:
                    answer = await step.handler()
                    if answer is not None:
                        setattr(context, _ANSWERED_AT, step.stage)
                        return answer
        return await super().dispatch_request(request_context)

    async def process_response(self, response: Any, request_context: RequestContext | None = None) -> Any:
        response = await super().process_response(response, request_context)
        after = self.request_pipeline.after
        if after:
            context = request_context or _cv_request.get()
            floor = getattr(context, _ANSWERED_AT, None)
            for step in after:
                if floor is None or step.stage > floor:
                    response = await step.transform(response)
        return response

    # --- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        for result in self.plugin_manager.hook.aeros_startup(app=self):
            if inspect.isawaitable(result):
                await result
        await super().startup()

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            for result in self.plugin_manager.hook.aeros_shutdown(app=self):
                try:
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("a plugin's shutdown failed")

    # --- running ---------------------------------------------------------------------------

    def run(  # type: ignore[override]
        self,
        host: str | None = None,
        port: int | None = None,
        **keywords: Unpack[RunOptions],
    ) -> None:
        """Serve the app until SIGINT/SIGTERM; ``workers > 1`` starts supervised processes.

        Blocks. Logs ``Running on http://HOST:PORT``. On SIGINT/SIGTERM stops accepting,
        lets requests in flight finish within ``graceful_timeout`` seconds, and returns; a
        second SIGINT stops at once. The keywords are the fields of
        :class:`~aeros_core.runner.settings.ServerSettings` (``workers``, ``graceful_timeout``,
        ``keep_alive_timeout``...; each also read from ``AEROS_<NAME>``); other keywords go to
        the server backend's own configuration. See docs/getting-started.md for every keyword.
        """
        from .runner import run

        run(self, self._run_keywords(host, port, keywords))

    def run_in_thread(
        self,
        host: str | None = None,
        port: int | None = 0,
        **keywords: Unpack[ThreadRunOptions],
    ) -> ThreadedServer:
        """Serve the app from a background thread; returns once the socket listens.

        ``port=0`` picks a free port. Takes the keywords of :meth:`run` except the
        supervisor's (``workers``, ``reload``, ``worker_timeout``, ``max_requests``...). The
        result has ``.url``, ``.port``, ``.stop(timeout)`` and works as a context manager.
        """
        from .runner.thread import start_in_thread

        return start_in_thread(self, self._run_keywords(host, port, keywords))

    def run_server(self, *args: Any, **kwargs: Any) -> None:
        """The original Aeros name of :meth:`run`. Deprecated."""
        warnings.warn("run_server() is deprecated; use run()", DeprecationWarning, stacklevel=2)
        self.run(*args, **kwargs)

    def _run_keywords(self, host: str | None, port: int | None, keywords: Mapping[str, Any]) -> dict[str, Any]:
        """The keywords given in code: run()'s, over the host and port given to the constructor."""
        given = dict(self._given_address)
        if host is not None:
            given["host"] = host
        if port is not None:
            given["port"] = port
        given.update(keywords)
        return given
