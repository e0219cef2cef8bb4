"""The aeros-compress plugin: the ``compression=`` keyword and its ASGI wrapper at ``Stage.ENCODE``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aeros_core.hookspecs import hookimpl
from aeros_core.observe import listener
from aeros_core.options import Option
from aeros_core.pipeline import ASGIApp, AsgiWrapper, Stage

from .codecs import Algorithm
from .middleware import CompressMiddleware
from .variants import VariantCache

#: Default size of the LRU of compressed bodies with strong ETags (per served app and process).
DEFAULT_VARIANT_CACHE = 8 * 1024 * 1024


def normalize(value: Any) -> tuple[Algorithm, ...]:
    """``compression=`` as a tuple of algorithms in preference order (empty: compression off)."""
    if value is None:
        return ()
    if isinstance(value, Algorithm):
        return (value,)
    if isinstance(value, type) and issubclass(value, Algorithm):
        raise TypeError(f"compression= takes an instance: compression={value.__name__}(), not {value.__name__}")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"compression= takes Gzip(), Br(), Zstd() or a list of them, got {value!r}")
    algorithms = tuple(value)
    seen: set[str] = set()
    for algorithm in algorithms:
        if not isinstance(algorithm, Algorithm):
            raise TypeError(f"compression= list items must be Gzip(), Br() or Zstd(), got {algorithm!r}")
        if algorithm.encoding in seen:
            raise ValueError(f"compression= lists {algorithm.encoding!r} twice")
        seen.add(algorithm.encoding)
    return algorithms


class CompressPlugin:
    """Negotiated gzip/brotli/zstd for every response of one app (one instance per WebServer)."""

    def __init__(self) -> None:
        self.algorithms: tuple[Algorithm, ...] = ()
        self.variant_cache_size = DEFAULT_VARIANT_CACHE
        #: the middleware of each server this app was served by (for stats and tests)
        self.middlewares: list[CompressMiddleware] = []
        self.app: Any = None

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [
            Option(
                "compression",
                None,
                "Gzip(), Br(), Zstd(), or a list of them to negotiate with Accept-Encoding (first preferred)",
            ),
            Option(
                "compression_cache",
                DEFAULT_VARIANT_CACHE,
                "bytes of compressed bodies with strong ETags to keep, so they are compressed once (0: off)",
            ),
        ]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        self.algorithms = normalize(options["compression"])
        size = options["compression_cache"]
        if size is None:
            size = 0
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"compression_cache must be a number of bytes >= 0, got {size!r}")
        self.variant_cache_size = size
        self.app = app

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper | None:
        if not self.algorithms:
            return None
        return AsgiWrapper(Stage.ENCODE, self.wrap)

    def wrap(self, asgi_app: ASGIApp) -> ASGIApp:
        variants = VariantCache(self.variant_cache_size) if self.variant_cache_size else None
        middleware = CompressMiddleware(asgi_app, self.algorithms, variants)
        observe = listener(self.app, "aeros_compress_event")
        if observe is not None:
            app = self.app
            middleware.on_encoded = lambda scope, encoding, bytes_in, bytes_out: observe(
                app=app, scope=scope, encoding=encoding, bytes_in=bytes_in, bytes_out=bytes_out
            )
        self.middlewares.append(middleware)
        return middleware
