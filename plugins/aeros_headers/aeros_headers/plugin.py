"""The aeros-headers plugin: ``global_headers=``, ``cors=``, ``security_headers=`` and ``@Cors``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aeros_core.hookspecs import hookimpl
from aeros_core.options import Option
from aeros_core.pipeline import AsgiWrapper, Stage

from .cors import Cors
from .fields import RawHeader, encode_headers
from .middleware import RouteIndex, headers_wrapper
from .security import security_headers


class HeadersPlugin:
    """One instance per ``WebServer``: the checked, encoded header lists and the CORS policy.

    Everything is validated in ``aeros_app_init``, so a bad header or an impossible CORS
    policy fails at ``WebServer(...)``. With none of the keywords set and no ``@Cors`` route,
    the plugin adds nothing to the request path.
    """

    def __init__(self) -> None:
        self.over_http: list[RawHeader] = []
        self.over_https: list[RawHeader] = []
        self.cors: Cors | None = None

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [
            Option("global_headers", None, "headers added to every response: {'Name': 'value'}"),
            Option("cors", None, "CORS policy: True, {'origins': [...], 'credentials': ...} or Cors(...)"),
            Option(
                "security_headers",
                False,
                "True or a dict of overrides: nosniff, Referrer-Policy, X-Frame-Options, HSTS",
            ),
        ]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        global_headers = encode_headers(options["global_headers"])
        security_http, security_https = security_headers(options["security_headers"])
        # Explicit global headers beat the preset's header of the same name.
        named = {name for name, _ in global_headers}
        self.over_http = global_headers + [h for h in security_http if h[0] not in named]
        self.over_https = global_headers + [h for h in security_https if h[0] not in named]
        self.cors = Cors.from_setting(options["cors"])

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any) -> AsgiWrapper | None:
        index = RouteIndex(app)
        routes = index if index.policies() else None  # some view carries its own @Cors
        if not (self.over_http or self.over_https or self.cors or routes):
            return None
        return AsgiWrapper(
            Stage.HEADERS,
            headers_wrapper(over_http=self.over_http, over_https=self.over_https, cors=self.cors, routes=routes),
        )
