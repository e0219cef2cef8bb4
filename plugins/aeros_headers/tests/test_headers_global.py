"""Global headers reach every kind of response, served by a real server."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from quart import request

from aeros import AsgiWrapper, Stage, WebServer, hookimpl

GLOBAL = {"X-Global": "everywhere", "X-Team": "aeros"}


class EdgeCache:
    """Answers ``/cached`` at the ASGI edge (Stage.STORE), as a cache hit of aeros-cache may."""

    name = "edge-cache-stand-in"

    @hookimpl
    def aeros_asgi_wrapper(self, app, settings):
        def wrap(inner):
            async def edge(scope, receive, send):
                if scope["type"] == "http" and scope["path"] == "/cached":
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
                    )
                    await send({"type": "http.response.body", "body": b"from the cache"})
                    return
                await inner(scope, receive, send)

            return edge

        return AsgiWrapper(Stage.STORE, wrap)


def make_app(**options) -> WebServer:
    app = WebServer(__name__, global_headers=GLOBAL, plugins=[EdgeCache], **options)
    app.config["MAX_CONTENT_LENGTH"] = 16

    @app.route("/")
    async def home():
        return "home"

    @app.route("/upload", methods=["POST"])
    async def upload():
        return f"{len(await request.get_data())} bytes"

    @app.route("/boom")
    async def boom():
        raise RuntimeError("the view failed on purpose")

    @app.route("/own")
    async def own():
        return "own", 200, {"X-Global": "from-the-view"}

    return app


def assert_global(response: httpx.Response) -> None:
    assert response.headers.get("x-global") == "everywhere", (response.status_code, dict(response.headers))
    assert response.headers.get("x-team") == "aeros"


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("GET", "/", None, 200),
        ("GET", "/missing", None, 404),
        ("POST", "/", None, 405),
        ("POST", "/upload", b"x" * 8, 200),
        ("POST", "/upload", b"x" * 1000, 413),
        ("GET", "/boom", None, 500),
        ("GET", "/cached", None, 200),
        ("OPTIONS", "/", None, 200),
    ],
)
def test_global_headers_on_every_kind_of_response(serve, method, path, body, status):
    server = serve(make_app())
    response = httpx.request(method, server.url + path, content=body, timeout=10)
    assert response.status_code == status
    assert_global(response)
    if path == "/cached":
        assert response.text == "from the cache"


def test_global_headers_on_the_soft_limit_503(serve):
    app = make_app()
    started, release = threading.Event(), threading.Event()

    @app.route("/slow")
    async def slow():
        started.set()
        await asyncio.to_thread(release.wait, 10)
        return "slow done"

    server = serve(app, soft_limit=1)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.get, server.url + "/slow", timeout=20)
        try:
            assert started.wait(10), "the slow view never started"
            busy = httpx.get(server.url + "/", timeout=10)
        finally:
            release.set()
        done = first.result(timeout=20)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert_global(busy)
    assert done.status_code == 200 and done.text == "slow done"
    assert_global(done)


def test_a_header_the_view_set_wins(serve):
    server = serve(make_app())
    response = httpx.get(server.url + "/own", timeout=10)
    assert response.headers.get_list("x-global") == ["from-the-view"]
    assert response.headers["x-team"] == "aeros"


def test_list_form_repeats_a_header(serve):
    app = WebServer(__name__, global_headers=[("Link", "</a.css>; rel=preload"), ("Link", "</b.js>; rel=preload")])

    @app.route("/")
    async def home():
        return "home"

    response = httpx.get(serve(app).url + "/", timeout=10)
    assert response.headers.get_list("link") == ["</a.css>; rel=preload", "</b.js>; rel=preload"]


@pytest.mark.parametrize(
    "headers",
    [{"Bad Name": "x"}, {"X-Split": "a\r\nSet-Cookie: evil=1"}, {"X-None": None}, {"X-Snow": "☃"}],
)
def test_bad_global_headers_fail_at_construction(headers):
    with pytest.raises(ValueError):
        WebServer(__name__, global_headers=headers)


def test_nothing_configured_adds_no_wrapper():
    app = WebServer(__name__)
    plugin = app.plugin_manager.get_plugin("headers")
    assert plugin is not None
    assert plugin.aeros_asgi_wrapper(app=app) is None
    configured = WebServer(__name__, global_headers={"X-A": "1"})
    assert configured.plugin_manager.get_plugin("headers").aeros_asgi_wrapper(app=configured).stage == Stage.HEADERS


def test_real_cache_hits_at_the_edge_get_global_and_per_origin_cors_headers(serve):
    """With aeros-cache installed: hits (from Quart and from the ASGI edge) carry the headers,
    and CORS headers follow each request's own origin, never the stored response's."""
    cache_plugin = pytest.importorskip("aeros_cache")
    origins = ["https://one.example", "https://two.example", "https://three.example", "https://evil.example"]
    app = WebServer(__name__, cache=cache_plugin.SimpleCache(), global_headers=GLOBAL, cors={"origins": origins[:3]})
    calls = []

    @app.route("/count")
    @app.cache(timeout=60)
    async def count():
        calls.append(1)
        return {"n": len(calls)}

    server = serve(app)
    responses = [httpx.get(server.url + "/count", headers={"Origin": origin}, timeout=10) for origin in origins]
    assert len(calls) == 1
    assert [r.json() for r in responses] == [{"n": 1}] * 4
    assert [r.headers.get("x-cache") for r in responses][1:] == ["HIT"] * 3
    assert app.cache.stats["edge_hits"] >= 1
    for response, origin in zip(responses, origins):
        assert_global(response)
        assert "origin" in response.headers["vary"].lower()
        expected = origin if origin != "https://evil.example" else None
        assert response.headers.get("access-control-allow-origin") == expected
