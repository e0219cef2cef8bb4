"""aeros-otel: OpenTelemetry server spans for aeros (``WebServer(tracing=True)``)."""

from .plugin import TracingConfig, TracingPlugin

__all__ = ["TracingConfig", "TracingPlugin"]
