"""The plugin class: aeros makes one instance per ``WebServer``, so per-app state lives on ``self``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aeros import AfterResponse, AsgiWrapper, Option, ServerSettings, Stage, WebServer, hookimpl

ASGIApp = Callable[..., Awaitable[None]]

PING_PATH = "/hello-plugin/ping"
PING_BODY = b"pong\n"


class HelloPlugin:
    """Declares ``hello_greeting=``; when it is set, adds a route and an ``X-Hello`` header and
    answers a ping at the edge. Left at ``None`` (the default) the plugin adds nothing at all:
    an installed plugin that is not configured must cost nothing on the request path.
    """

    def __init__(self) -> None:
        self.greeting: str | None = None
        self.serving = 0  # serving processes/threads of this app that ran startup but not shutdown

    # --- construction: called once, inside WebServer(...) -------------------------------------

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [Option("hello_greeting", None, "the greeting of /hello-plugin/<name> and X-Hello; None: off")]

    @hookimpl
    def aeros_app_init(self, app: WebServer, options: Mapping[str, Any]) -> None:
        greeting = options["hello_greeting"]
        if greeting is None:
            return  # not configured for this app: no route, no steps, no wrapper
        if not isinstance(greeting, str) or not greeting:
            raise TypeError(f"hello_greeting must be a non-empty str or None, got {greeting!r}")
        self.greeting = greeting

        async def hello(name: str) -> dict[str, Any]:
            return {"greeting": f"{self.greeting}, {name}!", "serving": self.serving}

        # An endpoint name prefixed with the plugin's name cannot clash with the user's views.
        app.add_url_rule("/hello-plugin/<name>", "aeros_hello.hello", hello)

    # --- request path: factories, called once per app (never per request) ----------------------

    @hookimpl
    def aeros_after_response(self, app: WebServer) -> AfterResponse | None:
        greeting = self.greeting
        if greeting is None:
            return None

        async def add_header(response: Any) -> Any:
            response.headers["X-Hello"] = greeting
            return response

        # HEADERS: after the cache stored the body (STORE), before compression (ENCODE).
        return AfterResponse(Stage.HEADERS, add_header)

    @hookimpl
    def aeros_asgi_wrapper(self, app: WebServer, settings: ServerSettings) -> AsgiWrapper | None:
        if self.greeting is None:
            return None

        def wrap(inner: ASGIApp) -> ASGIApp:
            async def hello_edge(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] == "http" and scope["path"] == PING_PATH:
                    # Answered before Quart builds a request context: the cheapest response there is.
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(PING_BODY)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": PING_BODY})
                    return
                await inner(scope, receive, send)

            return hello_edge

        return AsgiWrapper(Stage.HEADERS, wrap)

    # --- lifecycle: in each serving process, inside its event loop -----------------------------

    @hookimpl
    def aeros_startup(self, app: WebServer) -> Awaitable[None]:
        async def opened() -> None:  # open connection pools etc. here
            self.serving += 1

        return opened()

    @hookimpl
    def aeros_shutdown(self, app: WebServer) -> None:
        self.serving -= 1
