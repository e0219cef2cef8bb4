"""ETags and Vary stay correct across encodings."""

from __future__ import annotations

from typing import Any

from quart import Response, request

from aeros import Br, Gzip, WebServer


def make_app(doc: bytes) -> WebServer:
    app = WebServer(__name__, compression=[Br(), Gzip()], disable_plugins=["hello"])

    @app.route("/strong")
    async def strong() -> Response:
        response = Response(doc, content_type="application/json")
        response.set_etag("v1")
        return await response.make_conditional(request)

    @app.route("/weak")
    async def weak() -> Response:
        response = Response(doc, content_type="application/json")
        response.set_etag("v1", weak=True)
        return response

    @app.route("/vary-origin")
    async def vary_origin() -> Response:
        return Response(doc, content_type="application/json", headers={"Vary": "Origin"})

    @app.route("/vary-already")
    async def vary_already() -> Response:
        return Response(doc, content_type="application/json", headers={"Vary": "Cookie, accept-encoding"})

    @app.route("/vary-star")
    async def vary_star() -> Response:
        return Response(doc, content_type="application/json", headers={"Vary": "*"})

    @app.route("/file")
    async def file() -> Response:
        return Response(doc, content_type="text/plain", headers={"Accept-Ranges": "bytes"})

    return app


def test_strong_etag_becomes_weak_when_encoded(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/strong", "gzip")
    assert response.headers["etag"] == 'W/"v1"'
    assert decode("gzip", body) == doc
    response, body = fetch(server.url + "/strong", "br")
    assert response.headers["etag"] == 'W/"v1"'
    response, body = fetch(server.url + "/strong")
    assert response.headers["etag"] == '"v1"'  # identity: the strong validator still holds
    assert body == doc


def test_weak_etag_stays_weak(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b"{}" * 1000))
    response, _ = fetch(server.url + "/weak", "gzip")
    assert response.headers["etag"] == 'W/"v1"'


def test_conditional_request_with_the_weak_etag(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b"{}" * 1000))
    response, body = fetch(server.url + "/strong", "gzip", If_None_Match='W/"v1"')
    assert response.status_code == 304 and body == b""
    # the 304 carries the validator the client holds, and says the resource varies
    assert response.headers["etag"] == 'W/"v1"'
    assert "accept-encoding" in response.headers["vary"].lower()
    response, _ = fetch(server.url + "/strong", If_None_Match='"v1"')
    assert response.status_code == 304
    assert response.headers["etag"] == '"v1"'
    response, _ = fetch(server.url + "/strong", "gzip", If_None_Match='W/"v0"')
    assert response.status_code == 200


def test_vary_is_merged(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b"{}" * 1000))
    response, _ = fetch(server.url + "/vary-origin", "gzip")
    assert response.headers["vary"] == "Origin, Accept-Encoding"
    response, _ = fetch(server.url + "/vary-origin")  # identity too
    assert response.headers["vary"] == "Origin, Accept-Encoding"
    response, _ = fetch(server.url + "/vary-already", "gzip")
    assert response.headers["vary"] == "Cookie, accept-encoding"
    response, _ = fetch(server.url + "/vary-star", "gzip")
    assert response.headers["vary"] == "*"


def test_accept_ranges_dropped_from_the_encoded_variant(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b"{}" * 1000))
    response, _ = fetch(server.url + "/file", "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-ranges" not in response.headers
    response, _ = fetch(server.url + "/file")
    assert response.headers["accept-ranges"] == "bytes"
