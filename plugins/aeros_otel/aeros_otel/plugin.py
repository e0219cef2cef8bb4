"""The aeros-otel plugin: ``WebServer(__name__, tracing=True)``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode
from quart import request
from quart.signals import got_request_exception

from aeros_core.hookspecs import hookimpl
from aeros_core.observe import RouteRecorder
from aeros_core.options import Option
from aeros_core.pipeline import AfterResponse, AsgiWrapper, Stage

from .edge import SPAN_KEY, trace_id_of, tracing_wrapper
from .sdk import ExporterFactory, build_provider

log = logging.getLogger("aeros.otel")

#: inside the metrics wrapper and the access log, outside everything that answers or changes responses
TRACING_STAGE = Stage.OBSERVE - 20


@dataclass(frozen=True)
class TracingConfig:
    """``tracing=`` after validation."""

    service_name: str | None = None  #: default: the app's name (``OTEL_SERVICE_NAME`` wins)
    exporter: ExporterFactory | None = None  #: called in each worker; default: ``OTEL_TRACES_EXPORTER``


def parse(value: Any) -> TracingConfig | None:
    if value is None or value is False:
        return None
    if value is True:
        return TracingConfig()
    if not isinstance(value, Mapping):
        raise TypeError(f"tracing= takes True, False or a dict like {{'service_name': 'shop'}}, got {value!r}")
    unknown = set(value) - {"service_name", "exporter"}
    if unknown:
        raise TypeError(f"tracing= does not take {sorted(unknown)}; it takes 'service_name', 'exporter'")
    exporter = value.get("exporter")
    if exporter is not None and not callable(exporter):
        raise TypeError("tracing={'exporter': ...} takes a function returning a SpanExporter, called in each worker")
    return TracingConfig(value.get("service_name"), exporter)


class TracingPlugin:
    """OpenTelemetry server spans for one ``WebServer``."""

    def __init__(self) -> None:
        self.config: TracingConfig | None = None
        self.app: Any = None
        self.routes: RouteRecorder | None = None
        #: this serving process's provider, built in aeros_startup
        self.provider: TracerProvider | None = None

    @property
    def observing(self) -> bool:
        """Whether this app listens to the event hooks (``tracing=`` is on); see ``aeros_core.observe.listener``."""
        return self.config is not None

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [
            Option(
                "tracing",
                None,
                "OpenTelemetry server spans: True (OTEL_* variables configure the SDK), or"
                " {'service_name': ..., 'exporter': factory}",
            )
        ]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        self.config = parse(options["tracing"])
        self.app = app
        if self.config is not None:
            self.routes = RouteRecorder(app)
            got_request_exception.connect(self.on_exception, app)

    async def on_exception(self, sender: Any, exception: BaseException, **extra: Any) -> None:
        """Quart turned an exception of a view into a 500: record it on the request's span."""
        span: Any = request.scope.get(SPAN_KEY)
        if span is not None and span.is_recording():
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))

    @hookimpl
    def aeros_after_response(self, app: Any) -> AfterResponse | None:
        return None if self.routes is None else self.routes.step()

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper | None:
        if self.routes is None:
            return None
        return AsgiWrapper(TRACING_STAGE, tracing_wrapper(lambda: self.provider, self.routes))

    @hookimpl
    def aeros_access_log_fields(self, app: Any, settings: Any) -> Mapping[str, Callable[[dict[str, Any]], Any]] | None:
        return None if self.routes is None else {"trace_id": trace_id_of}

    @hookimpl
    def aeros_startup(self, app: Any) -> None:
        if self.config is None:
            return
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            log.info("OTEL_SDK_DISABLED=true: requests are not traced")
            return
        try:
            self.provider = build_provider(self.config.service_name or app.name, self.config.exporter)
        except Exception as error:  # a bad exporter setting must not keep the app from serving
            log.warning("tracing is off in this process: the OpenTelemetry SDK could not start: %r", error)

    @hookimpl
    def aeros_shutdown(self, app: Any) -> Any:
        provider, self.provider = self.provider, None
        if provider is not None:
            return asyncio.to_thread(provider.shutdown)  # flushes the last spans, off the event loop
        return None

    # --- what the cache and compression plugins tell ----------------------------------------

    @hookimpl
    def aeros_cache_event(self, scope: Mapping[str, Any], result: str) -> None:
        span = scope.get(SPAN_KEY)
        if span is not None:
            span.set_attribute("aeros.cache.result", result)

    @hookimpl
    def aeros_compress_event(self, scope: Mapping[str, Any], encoding: str, bytes_in: int, bytes_out: int) -> None:
        span = scope.get(SPAN_KEY)
        if span is not None:
            span.set_attribute("aeros.compress.encoding", encoding)
            span.set_attribute("aeros.compress.bytes_in", bytes_in)
            span.set_attribute("aeros.compress.bytes_out", bytes_out)
