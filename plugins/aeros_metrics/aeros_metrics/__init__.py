"""aeros-metrics: Prometheus metrics of every worker of an aeros instance (``WebServer(metrics=True)``)."""

from .plugin import MetricsConfig, MetricsPlugin

__all__ = ["MetricsConfig", "MetricsPlugin"]
