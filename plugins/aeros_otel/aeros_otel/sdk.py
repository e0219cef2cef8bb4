"""The OpenTelemetry SDK of one serving process, configured from the ``OTEL_*`` variables.

Built in each worker after the fork (the plugin's ``aeros_startup``), so the batch processor's
export thread lives in the process whose spans it exports: an SDK started before the fork
would leave every worker with a copy whose thread does not exist. The provider is kept on the
plugin instance and handed to the middleware; the global tracer provider is never set, so two
apps in one process trace independently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

log = logging.getLogger("aeros.otel")

ExporterFactory = Callable[[], SpanExporter]


def exporter_from_environment() -> SpanExporter | None:
    """``OTEL_TRACES_EXPORTER``: ``otlp`` (the default; http/protobuf), ``console`` or ``none``."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip().lower()
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported by aeros-otel: use otlp, console or none")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT itself


def build_provider(service_name: str, exporter: ExporterFactory | None = None) -> TracerProvider:
    """A provider whose spans go through a batch processor (``OTEL_BSP_*``) to the exporter.

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` win over ``service_name``; the
    sampler comes from ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on).
    """
    attributes: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    chosen = exporter() if exporter is not None else exporter_from_environment()
    if chosen is not None:
        provider.add_span_processor(BatchSpanProcessor(chosen))
    return provider
