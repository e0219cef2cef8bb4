"""What the first-party plugins provide, for helpful errors when one is not installed.

This is the only place that knows which extra brings which name; the names themselves are
served by the installed plugins (see ``aeros.__getattr__``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownPlugin:
    module: str
    extra: str
    names: tuple[str, ...]
    options: tuple[str, ...]


KNOWN_PLUGINS: tuple[KnownPlugin, ...] = (
    KnownPlugin(
        "aeros_cache",
        "cache",
        (
            "SimpleCache",
            "FileSystemCache",
            "FilesystemCache",
            "RedisCache",
            "CacheControl",
            "CacheTypes",
            "CacheBackend",
            "AppCache",
            "CachingApp",
            "cache_of",
        ),
        ("cache",),
    ),
    KnownPlugin(
        "aeros_compress",
        "compress",
        ("Gzip", "Br", "Zstd", "Compression", "Algorithm", "MissingCodecError"),
        ("compression", "compression_cache"),
    ),
    KnownPlugin("aeros_headers", "headers", ("Cors",), ("global_headers", "cors", "security_headers")),
    KnownPlugin("aeros_request", "request", ("EasyRequest", "JSONBodyError", "FormBodyError"), ()),
    KnownPlugin("aeros_metrics", "metrics", ("MetricsConfig", "MetricsPlugin"), ("metrics",)),
    KnownPlugin("aeros_otel", "otel", ("TracingConfig", "TracingPlugin"), ("tracing",)),
)


def extra_for_option(name: str) -> str | None:
    for plugin in KNOWN_PLUGINS:
        if name in plugin.options:
            return plugin.extra
    return None


def plugin_for_name(name: str) -> KnownPlugin | None:
    for plugin in KNOWN_PLUGINS:
        if name in plugin.names:
            return plugin
    return None


def known_plugin_options() -> list[str]:
    return [option for plugin in KNOWN_PLUGINS for option in plugin.options]


#: server backends that first-party plugins provide: ``app.run(server=name)`` -> extra
KNOWN_BACKENDS: dict[str, str] = {"uvicorn": "uvicorn", "granian": "granian"}
