"""The ASGI wrapper: one server span per HTTP request, named ``METHOD /url/<rule>``.

opentelemetry-instrumentation-asgi does the work underneath (W3C ``traceparent`` through the
configured propagators, HTTP semantic-convention attributes, status, exceptions that reach the
edge); around it aeros adds what only the app knows: the URL rule (known after Quart routed the
request, so the span is renamed when the request ends), the trace id in the access log, and the
span in the scope, where the cache and compression events find it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context, detach
from opentelemetry.instrumentation import utils as instrumentation_utils
from opentelemetry.instrumentation.asgi import (
    OpenTelemetryMiddleware,
    asgi_getter,
    asgi_setter,
    collect_request_attributes,
    set_status_code,
)
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Span, TracerProvider, format_trace_id, set_span_in_context, use_span

from aeros_core.observe import UNMATCHED, RouteRecorder
from aeros_core.pipeline import ASGIApp

#: ``scope[SPAN_KEY]``: the request's server span
SPAN_KEY = "aeros_otel.span"


def remember_span(span: Span, scope: dict[str, Any]) -> None:
    """The middleware's ``server_request_hook``: keep the span in the scope."""
    scope[SPAN_KEY] = span


def trace_id_of(scope: dict[str, Any]) -> str | None:
    """The access-log field ``trace_id``: the request's trace id, or None when it was not traced."""
    span = scope.get(SPAN_KEY)
    if span is None:
        return None
    context = span.get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else None


def name_span(scope: dict[str, Any], routes: RouteRecorder, status: int) -> None:
    span = scope.get(SPAN_KEY)
    if span is not None and span.is_recording():
        route = routes.route(scope, status)
        span.update_name(f"{scope['method']} {route}")
        if route != UNMATCHED:
            span.set_attribute("http.route", route)


def name_by_route(app: ASGIApp, routes: RouteRecorder) -> ASGIApp:
    """Runs inside the server span: names it ``METHOD rule`` and sets ``http.route``.

    Done before the last body message goes out: the instrumentation ends the span there.
    """

    async def named(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        status = 500
        done = False

        def watching_send(message: dict[str, Any]) -> Any:
            nonlocal status, done
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and not done and not message.get("more_body", False):
                done = True
                name_span(scope, routes, status)
            return send(message)

        try:
            await app(scope, receive, watching_send)
        finally:
            if not done:
                name_span(scope, routes, status)

    return named


#: the instrumentation's own start of a server span (private, hence looked up, not imported)
_START_SPAN: Callable[..., tuple[Span, Any]] | None = getattr(
    instrumentation_utils, "_start_internal_or_server_span", None
)

#: the middleware's attributes :func:`server_spans` and :func:`lean_enough` read
_USED = (
    "tracer",
    "_sem_conv_opt_in_mode",
    "default_span_details",
    "server_request_hook",
    "excluded_urls",
    "http_capture_headers_server_request",
    "http_capture_headers_server_response",
)


def lean_enough(middleware: OpenTelemetryMiddleware) -> bool:
    """Whether :func:`server_spans` does all that ``middleware`` was configured to do: none of the
    instrumentation's optional features is on (captured headers,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` / ``_RESPONSE``; excluded URLs,
    which aeros does not pass)."""
    if _START_SPAN is None or not all(hasattr(middleware, name) for name in _USED):
        return False  # a release of the instrumentation whose pieces moved: the middleware as is
    return not (
        middleware.excluded_urls
        or middleware.http_capture_headers_server_request
        or middleware.http_capture_headers_server_response
    )


def server_spans(app: ASGIApp, middleware: OpenTelemetryMiddleware, routes: RouteRecorder) -> ASGIApp:
    """The server span of ``middleware`` (its tracer, semantic-convention mode, span details and
    request hook, the same attributes, status, context and exception handling), without its
    per-request work for metrics (aeros gives it a no-op meter), its attributes set a second time
    and its send wrapper's look-ups, and named by the URL rule in the same send (one wrapper, not
    two). Used when :func:`lean_enough`; HTTP requests only."""
    start_span = _START_SPAN
    assert start_span is not None  # lean_enough
    tracer = middleware.tracer
    mode = middleware._sem_conv_opt_in_mode
    span_details = middleware.default_span_details
    request_hook = middleware.server_request_hook

    async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not is_http_instrumentation_enabled():
            return await app(scope, receive, send)
        span_name, extra = span_details(scope)
        attributes = collect_request_attributes(scope, mode)  # type: ignore[no-untyped-call]
        attributes.update(extra)
        span, token = start_span(
            tracer=tracer,
            span_name=span_name,
            start_time=None,
            context_carrier=scope,
            context_getter=asgi_getter,
            attributes=attributes,
        )
        status = 500
        done = False

        async def send_then_end(message: dict[str, Any]) -> None:
            await send(message)
            span.end()

        def traced_send(message: dict[str, Any]) -> Any:
            # As the middleware's send with its send spans left out (so it never expects trailers):
            # the status at the start, the span named by the rule and ended with the last body.
            nonlocal status, done
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                set_status_code(span, status, None, mode)  # type: ignore[no-untyped-call]
            propagator = get_global_response_propagator()  # type: ignore[no-untyped-call]
            if propagator:
                propagator.inject(message, context=set_span_in_context(span, Context()), setter=asgi_setter)
            if kind == "http.response.body" and not message.get("more_body", False):
                if not done:
                    done = True
                    name_span(scope, routes, status)
                return send_then_end(message)
            return send(message)

        try:
            with use_span(span, end_on_exit=False):
                if request_hook is not None:
                    request_hook(span, scope)
                try:
                    await app(scope, receive, traced_send)
                finally:
                    if not done:
                        name_span(scope, routes, status)
        finally:
            if token:
                detach(token)
            if span.is_recording():
                span.end()

    return traced


def tracing_wrapper(
    provider_of: Callable[[], TracerProvider | None], routes: RouteRecorder
) -> Callable[[ASGIApp], ASGIApp]:
    """``provider_of()`` gives the process's provider once ``aeros_startup`` built it."""

    def wrap(app: ASGIApp) -> ASGIApp:
        inner = name_by_route(app, routes)
        traced: list[ASGIApp] = []  # the middleware (or its lean equal), built at the first request after startup

        async def tracing(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            if not traced:
                provider = provider_of()
                if provider is None:  # not started (served without lifespan): untraced
                    return await inner(scope, receive, send)
                middleware = OpenTelemetryMiddleware(
                    inner,
                    tracer_provider=provider,
                    meter_provider=NoOpMeterProvider(),
                    server_request_hook=remember_span,
                    exclude_spans=["receive", "send"],
                )
                traced.append(server_spans(app, middleware, routes) if lean_enough(middleware) else middleware)
            await traced[0](scope, receive, send)

        return tracing

    return wrap
