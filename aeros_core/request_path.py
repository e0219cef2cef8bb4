"""A shorter routed path for ``WebServer``: Quart's request steps, skipped when they would do nothing.

Each method below is Quart's own, overridden with a guard checked per request (a few dict and
list look-ups); when the guard holds, the step is skipped because Quart would have done
nothing observable; otherwise Quart's method runs. Nothing is cached, so functions, receivers
or a secret key added at any time take effect at once:

- ``ensure_async``: a coroutine function (or a bound method of one) is returned as it is, without
  ``asyncio.iscoroutinefunction``'s unwrapping, which would answer the same.
- ``preprocess_request``: skipped when no ``url_value_preprocessor`` and no ``before_request``
  function is registered (on the app or on any blueprint).
- ``process_response``: skipped when no ``after_request`` function (app, blueprints,
  ``after_this_request``) is registered and the session is a null session (no secret key).
- ``do_teardown_request`` / ``do_teardown_appcontext``: skipped when no teardown function is
  registered and the ``request_tearing_down`` / ``appcontext_tearing_down`` signal has no receiver.
- ``create_url_adapter``: the server name and subdomain a request's URL adapter is bound to
  depend only on its scheme and host (with no ``SERVER_NAME``, no host or subdomain matching,
  no ``trusted_hosts``), and the host only on the Host header (or, without one, the server's
  address): Quart computes them (host validated, normalised, IDNA-encoded) for the first request
  of each of up to 256 such keys, and later requests get a ``MapAdapter`` built with the same values.
- ``make_response``: a bare ``dict`` or ``list`` goes to ``app.json.response`` at once (Quart's
  method gets there after its type checks); a ``str`` or ``bytes`` return value (not in a tuple), with Quart's own
  ``Response`` class, is built by setting the attributes Quart's constructor sets, in its order
  and with its values (the Content-Type and status read off a ``Response`` made at import);
  werkzeug's constructor goes through the mimetype, header and status setters to the same result.
- ``handle_request``: Quart's, with the request and app contexts pushed and popped by the same
  steps written out in one place (context variables and their tokens as Quart keeps them, the
  null session set directly when the default session interface has no secret key), when neither
  ``request_context`` nor ``app_context`` is overridden and ``appcontext_pushed`` has no receiver.
- URL matching (in ``handle_request``): ``WebServer.url_map_class`` is :class:`LeanMap`, which
  remembers the rule a path without arguments matched (see there).
- ``full_dispatch_request`` / ``finalize_request``: the ``request_started`` / ``request_finished``
  signals are not sent when they have no receiver (blinker would call nobody).

A blinker signal with no receiver calls nobody whatever the sender; ``Signal.receivers`` is its
public mapping of receivers (empty when none).

One internal difference: Quart reads its registries (``defaultdict(list)``) with the request's
blueprint names, which leaves empty lists under those keys (``{None: []}``); the skipped steps
do not, so those dicts stay as registration left them. Which functions run is the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from inspect import CO_COROUTINE
from types import FunctionType, MethodType
from typing import Any

from quart import Quart
from quart.ctx import AppContext, RequestContext
from quart.globals import _cv_app, _cv_request
from quart.routing import QuartMap
from quart.sessions import SecureCookieSessionInterface
from quart.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)
from quart.wrappers import Request as QuartRequest
from quart.wrappers import Response
from quart.wrappers.response import DataBody
from werkzeug.datastructures import Headers
from werkzeug.routing import MapAdapter


def _none_registered(functions: Mapping[Any, list[Any]]) -> bool:
    """True when a Flask-style registry (``{blueprint name or None: [functions]}``) holds no function."""
    for registered in functions.values():
        if registered:
            return False
    return True


def _is_coroutine_function(func: Any) -> bool:
    """A plain coroutine function or a method bound to one (a cheap subset of iscoroutinefunction)."""
    if type(func) is MethodType:
        func = func.__func__
    return type(func) is FunctionType and bool(func.__code__.co_flags & CO_COROUTINE)


def _template() -> tuple[str, str, int]:
    """What Quart's ``Response(str or bytes)`` sets, read off one: the Content-Type, the status."""
    made = Response(b"")
    return made.headers["Content-Type"], made._status, made._status_code


DEFAULT_CONTENT_TYPE, _STATUS, _STATUS_CODE = _template()
_CONTENT_TYPES: dict[str, str] = {}


def content_type_for(mimetype: str) -> str:
    """The Content-Type Quart's ``Response(..., mimetype=mimetype)`` sends (a charset for text types)."""
    known = _CONTENT_TYPES.get(mimetype)
    if known is None:
        known = Response(b"", mimetype=mimetype).headers["Content-Type"]
        if len(_CONTENT_TYPES) < 64:
            _CONTENT_TYPES[mimetype] = known
    return known


def plain_response(data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> Response:
    """Quart's ``Response(data)`` (``mimetype=`` the type of ``content_type``), built with the
    attributes its constructor would set, in its order."""
    response = Response.__new__(Response)
    headers = Headers()
    headers._list = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    response.headers = headers
    response._status = _STATUS
    response._status_code = _STATUS_CODE
    response.timeout = Ellipsis
    response.response = DataBody(data)
    return response


class LeanMap(QuartMap):
    """Quart's URL map, remembering which rule each path that needs no argument matched.

    A successful match of a rule without arguments or defaults gives that rule and empty view
    arguments whatever else the request says (a redirect or an error is raised, never
    remembered), so later requests with the same path, method and subdomain get the rule without
    running werkzeug's matcher. Adding a rule forgets everything; at most ``STATIC_MATCHES_LIMIT``
    paths are remembered (paths come from clients).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.static_matches: dict[tuple[str, str, str | None], Any] = {}
        super().__init__(*args, **kwargs)

    def add(self, rulefactory: Any) -> None:
        self.static_matches.clear()
        super().add(rulefactory)


STATIC_MATCHES_LIMIT = 1024

#: the URL map classes whose adapters ``create_url_adapter`` may build (Quart's own ``bind_to_request``)
_MAP_CLASSES = (QuartMap, LeanMap)

#: at most this many scheme/host pairs remembered per app (the Host header comes from clients)
BOUND_HOSTS_LIMIT = 256


class LeanRequestPath(Quart):
    """Quart's per-request steps with the do-nothing cases skipped; see the module documentation."""

    url_map_class = LeanMap
    _bound_hosts: dict[tuple[str, str | None, tuple[Any, ...] | None, str | None], tuple[str, str | None]] | None = None

    def create_url_adapter(self, request: Any) -> Any:
        url_map = self.url_map
        if (
            request is None
            or type(url_map) not in _MAP_CLASSES
            or url_map.host_matching
            or self.subdomain_matching
            or self.config["SERVER_NAME"] is not None
            or request.trusted_hosts is not None
        ):
            return super().create_url_adapter(request)
        bound = self._bound_hosts
        if bound is None:
            bound = self._bound_hosts = {}
        # what werkzeug derives request.host from: the Host header, else the server's address
        host_header = request.headers.get("Host")
        server = None if host_header is not None or request.server is None else tuple(request.server)
        key = (request.scheme, host_header, server, url_map.default_subdomain)
        known = bound.get(key)
        if known is None:
            adapter = super().create_url_adapter(request)
            if adapter is not None and len(bound) < BOUND_HOSTS_LIMIT:
                bound[key] = (adapter.server_name, adapter.subdomain)
            return adapter
        server_name, subdomain = known
        return MapAdapter(
            url_map,
            server_name,
            request.root_path if request.root_path is not None else "/",
            subdomain,
            request.scheme,
            request.path,
            request.method,
            request.query_string.decode(),
        )

    async def handle_request(self, request: Any) -> Any:
        cls = type(self)
        if (
            cls.request_context is not Quart.request_context
            or cls.app_context is not Quart.app_context
            or "request_context" in self.__dict__
            or "app_context" in self.__dict__
            or appcontext_pushed.receivers
        ):
            return await super().handle_request(request)
        context = RequestContext(self, request)
        if not self._push_contexts(context):
            await context._push()  # the session interface's own open_session, then the match
        # Quart's handle_request, inside ``async with`` that context
        exc: BaseException | None = None
        try:
            try:
                return await self.full_dispatch_request(context)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                return await self.handle_exception(error)
            finally:
                if request.scope.get("_quart._preserve_context", False):
                    self._preserved_context = context.copy()
        except BaseException as error:
            exc = error
            raise
        finally:
            await self._pop_contexts(context, exc)

    def _push_contexts(self, context: RequestContext) -> bool:
        """``RequestContext.push`` as Quart runs it (``appcontext_pushed`` has no receiver): the
        request context, the app context, then the null session and the URL match when the
        default session interface has no secret key (``True``); ``False``: the session is to be
        opened by the context's own ``_push``."""
        token = _cv_request.set(context)
        app_context: AppContext | None = _cv_app.get(None)
        if app_context is None or app_context.app is not self:
            app_context = AppContext(self)
            app_context._cv_tokens.append(_cv_app.set(app_context))
        else:
            app_context = None
        context._cv_tokens.append((token, app_context))
        interface = self.session_interface
        if type(interface) is not SecureCookieSessionInterface or self.secret_key:
            return False
        context.session = interface.null_session_class()  # what open_session's None leads to
        if context.url_adapter is not None:
            self._match_request(context)
        return True

    def _match_request(self, context: RequestContext) -> None:
        """``context.match_request()``, with the rule of a path that needs no argument remembered."""
        url_map = self.url_map
        if type(url_map) is not LeanMap or url_map.host_matching or self.subdomain_matching:
            context.match_request()
            return
        adapter = context.url_adapter
        key = (adapter.path_info, adapter.default_method, adapter.subdomain)  # type: ignore[union-attr]
        request = context.request
        rule = url_map.static_matches.get(key)
        if rule is not None:
            request.url_rule, request.view_args = rule, {}
            return
        context.match_request()
        rule = request.url_rule
        if (
            request.routing_exception is None
            and rule is not None
            and not rule.arguments
            and not rule.defaults
            and not request.view_args
            and len(url_map.static_matches) < STATIC_MATCHES_LIMIT
        ):
            url_map.static_matches[key] = rule

    async def _pop_contexts(self, context: RequestContext, exc: BaseException | None) -> None:
        """``RequestContext.auto_pop`` and ``pop``, and ``AppContext.pop``, as Quart runs them."""
        request = context.request
        if request.scope.get("_quart._preserve_context", False) or (
            exc is not None and self.config["PRESERVE_CONTEXT_ON_EXCEPTION"]
        ):
            context.preserved = True
            return
        try:
            if len(context._cv_tokens) == 1:
                await self.do_teardown_request(exc, context)
                # Request.close closes the uploaded files; other request classes' close always runs
                if type(request).close is not QuartRequest.close or request._files:
                    await request.close()
        finally:
            current = _cv_request.get()
            token, app_context = context._cv_tokens.pop()
            _cv_request.reset(token)
            if app_context is not None:
                try:
                    if len(app_context._cv_tokens) == 1:
                        await self.do_teardown_appcontext(exc)
                finally:
                    current_app_context = _cv_app.get()
                    _cv_app.reset(app_context._cv_tokens.pop())
                    if current_app_context is not app_context:
                        raise AssertionError(
                            f"Popped wrong app context. ({current_app_context!r} instead of {app_context!r})"
                        )
                if appcontext_popped.receivers:
                    await appcontext_popped.send_async(self, _sync_wrapper=self.ensure_async)
            if current is not context:
                raise AssertionError(f"Popped wrong request context. ({current!r} instead of {context!r})")

    def ensure_async(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if _is_coroutine_function(func):
            return func
        return super().ensure_async(func)

    async def make_response(self, result: Any) -> Any:
        kind = type(result)
        if (kind is str or kind is bytes) and self.response_class is Response:
            return plain_response(result.encode() if kind is str else result)
        if kind is dict or kind is list:  # what Quart's make_response does with a bare dict or list
            return self.json.response(result)
        return await super().make_response(result)

    async def preprocess_request(self, request_context: RequestContext | None = None) -> Any:
        if (
            request_context is not None
            and _none_registered(self.before_request_funcs)
            and _none_registered(self.url_value_preprocessors)
        ):
            return None
        return await super().preprocess_request(request_context)

    async def process_response(self, response: Any, request_context: RequestContext | None = None) -> Any:
        context = request_context
        if (
            context is not None
            and not context._after_request_functions
            and _none_registered(self.after_request_funcs)
            and self.session_interface.is_null_session(context.session)
        ):
            return response
        return await super().process_response(response, request_context)

    async def do_teardown_request(
        self, exc: BaseException | None, request_context: RequestContext | None = None
    ) -> None:
        if request_tearing_down.receivers or not _none_registered(self.teardown_request_funcs):
            await super().do_teardown_request(exc, request_context)

    async def do_teardown_appcontext(self, exc: BaseException | None) -> None:
        if appcontext_tearing_down.receivers or self.teardown_appcontext_funcs:
            await super().do_teardown_appcontext(exc)

    async def full_dispatch_request(self, request_context: RequestContext | None = None) -> Any:
        if request_started.receivers:
            return await super().full_dispatch_request(request_context)
        try:
            result = await self.preprocess_request(request_context)
            if result is None:
                result = await self.dispatch_request(request_context)
        except Exception as error:
            result = await self.handle_user_exception(error)
        return await self.finalize_request(result, request_context)

    async def finalize_request(
        self, result: Any, request_context: RequestContext | None = None, from_error_handler: bool = False
    ) -> Any:
        if request_finished.receivers:
            return await super().finalize_request(result, request_context, from_error_handler)
        response = await self.make_response(result)
        try:
            response = await self.process_response(response, request_context)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing errored")
        return response
