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

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import Span, TracerProvider, format_trace_id

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


def tracing_wrapper(
    provider_of: Callable[[], TracerProvider | None], routes: RouteRecorder
) -> Callable[[ASGIApp], ASGIApp]:
    """``provider_of()`` gives the process's provider once ``aeros_startup`` built it."""

    def wrap(app: ASGIApp) -> ASGIApp:
        inner = name_by_route(app, routes)
        traced: list[Any] = []  # the middleware, built at the first request after startup

        async def tracing(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            if not traced:
                provider = provider_of()
                if provider is None:  # not started (served without lifespan): untraced
                    return await inner(scope, receive, send)
                traced.append(
                    OpenTelemetryMiddleware(
                        inner,
                        tracer_provider=provider,
                        meter_provider=NoOpMeterProvider(),
                        server_request_hook=remember_span,
                        exclude_spans=["receive", "send"],
                    )
                )
            await traced[0](scope, receive, send)

        return tracing

    return wrap
