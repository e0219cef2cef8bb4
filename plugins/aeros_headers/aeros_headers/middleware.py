"""The one ASGI wrapper (Stage.HEADERS) that adds global, security and CORS headers.

It sits outside the soft-limit 503 (Stage.LIMIT) and outside an edge cache hit (Stage.STORE),
so those answers get the headers too; it answers CORS preflights itself, before Quart builds
a request context. Every header list is encoded once, when the wrapper is built.
"""

from __future__ import annotations

from typing import Any, cast

from aeros_core.pipeline import ASGIApp

from .cors import Cors, route_policy
from .fields import RawHeader, add_missing, add_vary

_ALLOW_ORIGIN = b"access-control-allow-origin"


class RouteIndex:
    """Which endpoints carry their own ``@Cors(...)`` policy, and which endpoint a request hits.

    Routing results are memoised per ``(host, root path, path, method)`` in a bounded table
    (cleared when full, or when routes are added), so repeated requests skip the URL map.
    """

    MEMO_SIZE = 4096

    def __init__(self, app: Any) -> None:
        self.app = app
        self._seen = -1
        self._policies: dict[str, Cors] = {}
        self._memo: dict[tuple[str, str, str, str], str | None] = {}

    def policies(self) -> dict[str, Cors]:
        views = self.app.view_functions
        if len(views) != self._seen:  # routes added since the last look
            found = {}
            for endpoint, view in list(views.items()):
                policy = route_policy(view)
                if policy is not None:
                    found[endpoint] = policy
            self._policies, self._seen = found, len(views)
            self._memo.clear()
        return self._policies

    def policy_for(self, scope: dict[str, Any], method: str, default: Cors | None) -> Cors | None:
        """The route's own policy if the request routes to a ``@Cors`` view, else ``default``."""
        policies = self.policies()
        if not policies:
            return default
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        key = (host, scope.get("root_path") or "", scope["path"], method)
        memo = self._memo
        try:
            endpoint = memo[key]
        except KeyError:
            endpoint = self._endpoint(scope, host, method)
            if len(memo) >= self.MEMO_SIZE:
                memo.clear()
            memo[key] = endpoint
        if endpoint is None:
            return default
        return policies.get(endpoint, default)

    def _endpoint(self, scope: dict[str, Any], host: str, method: str) -> str | None:
        from werkzeug.exceptions import HTTPException

        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        try:
            adapter = self.app.url_map.bind(
                host or "localhost",
                script_name=root or None,
                url_scheme=scope.get("scheme", "http"),
                default_method=method,
                path_info=path,
            )
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:  # 404, 405, redirects: the app-wide policy answers
            return None
        return cast("str | None", rule.endpoint)


def headers_wrapper(
    *,
    over_http: list[RawHeader],
    over_https: list[RawHeader],
    cors: Cors | None,
    routes: RouteIndex | None,
) -> Any:
    """``wrap(asgi_app) -> asgi_app`` adding ``over_http``/``over_https`` and CORS to every response."""
    cors_active = cors is not None or routes is not None
    vary_origin = (cors is not None and cors.varies) or routes is not None

    def wrap(inner: ASGIApp) -> ASGIApp:
        async def with_headers(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            extra = over_https if scope.get("scheme") == "https" else over_http
            cors_headers: list[RawHeader] = []
            if cors_active:
                origin: bytes | None = None
                request_method: bytes | None = None
                request_headers: bytes | None = None
                for name, value in scope["headers"]:
                    if name == b"origin":
                        origin = value
                    elif name == b"access-control-request-method":
                        request_method = value
                    elif name == b"access-control-request-headers":
                        request_headers = value if request_headers is None else request_headers + b"," + value
                if origin is not None:
                    if scope["method"] == "OPTIONS" and request_method is not None:
                        method = request_method.decode("latin-1").strip().upper()
                    else:
                        method, request_method = scope["method"], None  # not a preflight
                    policy = routes.policy_for(scope, method, cors) if routes is not None else cors
                    if policy is not None and request_method is not None:
                        status, headers, body = policy.preflight(origin, request_method, request_headers)
                        add_missing(headers, {name for name, _ in headers}, extra)
                        await send({"type": "http.response.start", "status": status, "headers": headers})
                        await send({"type": "http.response.body", "body": body})
                        return
                    if policy is not None:
                        cors_headers = policy.actual_headers(origin)

            async def send_with_headers(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers") or ())
                    present = {name.lower() for name, _ in headers}
                    if cors_headers and _ALLOW_ORIGIN not in present:
                        headers.extend(cors_headers)
                    if vary_origin:
                        add_vary(headers, b"Origin")
                    add_missing(headers, present, extra)
                    message = {**message, "headers": headers}
                await send(message)

            await inner(scope, receive, send_with_headers)

        return with_headers

    return wrap
