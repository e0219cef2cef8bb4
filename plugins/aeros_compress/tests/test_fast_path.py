"""Requests that rule out every encoding up front (no Accept-Encoding, nothing acceptable, HEAD,
Range) take the middleware's identity path: the response must be exactly what it would be
through the full path — untouched bodies, and ``Vary: Accept-Encoding`` on compressible ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart import Response, request

from aeros import Br, Gzip, WebServer
from aeros_core.hookspecs import hookimpl
from aeros_core.pipeline import AsgiWrapper, Stage


class IterableHeaders:
    """A raw ASGI answer whose start message carries its headers as a generator (ASGI allows any
    iterable): the identity path must read them once and still add Vary."""

    def wrap(self, inner: Any) -> Any:
        async def raw(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/raw-generator-headers":
                body = b"raw body " * 100
                headers = (
                    (name, value)
                    for name, value in [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
                )
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await inner(scope, receive, send)

        return raw

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper:
        return AsgiWrapper(Stage.STORE, self.wrap)


def make_app(doc: bytes) -> WebServer:
    app = WebServer(__name__, compression=[Br(), Gzip()], disable_plugins=["hello"], plugins=[IterableHeaders()])

    @app.route("/doc")
    async def whole() -> Response:
        return Response(doc, content_type="application/json")

    @app.route("/tiny")
    async def tiny() -> str:
        return "Hello, World!"

    @app.route("/png")
    async def png() -> Response:
        return Response(doc, content_type="image/png")

    @app.route("/stream")
    async def stream() -> Response:
        async def chunks():
            for part in (doc[:1000], doc[1000:]):
                await asyncio.sleep(0)
                yield part

        return Response(chunks(), content_type="application/json")

    @app.route("/strong")
    async def strong() -> Response:
        response = Response(doc, content_type="application/json")
        response.set_etag("v1")
        return await response.make_conditional(request)

    return app


@pytest.mark.parametrize(
    "accept, method, headers",
    [
        (None, "GET", {}),
        ("identity", "GET", {}),
        ("*;q=0", "GET", {}),
        ("gzip, br", "HEAD", {}),
    ],
)
def test_identity_path_keeps_every_rule(
    serve: Any, fetch: Any, doc: bytes, accept: Any, method: str, headers: dict
) -> None:
    server = serve(make_app(doc))
    expect = (lambda body: b"") if method == "HEAD" else (lambda body: body)

    response, body = fetch(server.url + "/doc", accept, method, **headers)
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"  # compressible: varies even as identity
    assert body == expect(doc)

    response, body = fetch(server.url + "/stream", accept, method, **headers)
    assert "content-encoding" not in response.headers and response.headers["vary"] == "Accept-Encoding"
    assert body == expect(doc)

    for path, content in (("/tiny", b"Hello, World!"), ("/png", doc)):
        response, body = fetch(server.url + path, accept, method, **headers)
        assert "content-encoding" not in response.headers
        assert "vary" not in response.headers, path  # no client would get another representation
        assert body == expect(content)

    response, body = fetch(server.url + "/raw-generator-headers", accept, method, **headers)
    assert response.headers["vary"] == "Accept-Encoding"
    assert body == expect(b"raw body " * 100)


def test_range_request_takes_the_identity_path(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/strong", "gzip", Range="bytes=0-9")
    assert "content-encoding" not in response.headers
    assert "accept-encoding" in response.headers.get("vary", "").lower()
    assert body == (doc[:10] if response.status_code == 206 else doc)


def test_304_without_accept_encoding_echoes_the_weak_etag(serve: Any, fetch: Any, doc: bytes) -> None:
    """A client (or a cache in front) holding the encoded variant's W/"v1" may revalidate
    without Accept-Encoding: the 304 still names the validator it holds."""
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/strong", If_None_Match='W/"v1"')
    assert response.status_code == 304 and body == b""
    assert response.headers["etag"] == 'W/"v1"'
    assert "accept-encoding" in response.headers["vary"].lower()


def test_small_response_with_accept_encoding_is_forwarded_as_it_is(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/tiny", "gzip, br")
    assert "content-encoding" not in response.headers and "vary" not in response.headers
    assert response.headers["content-length"] == "13" and body == b"Hello, World!"
