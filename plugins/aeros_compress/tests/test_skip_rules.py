"""Responses that must not be compressed, and the ones that must even though they are odd."""

from __future__ import annotations

import gzip
import os
from typing import Any

from quart import Response, abort, request

from aeros import Br, Gzip, WebServer

ACCEPT = "gzip, br"


def make_app(doc: bytes, compression: Any = None) -> WebServer:
    app = WebServer(__name__, compression=compression or [Gzip(), Br()], disable_plugins=["hello"])

    @app.route("/doc", methods=["GET", "HEAD"])
    async def document() -> Response:
        return Response(doc, content_type="application/json")

    @app.route("/encoded")
    async def encoded() -> Response:
        return Response(gzip.compress(doc), content_type="application/json", headers={"Content-Encoding": "gzip"})

    @app.route("/identity-coded")
    async def identity_coded() -> Response:
        return Response(doc, content_type="application/json", headers={"Content-Encoding": "identity"})

    @app.route("/no-transform")
    async def no_transform() -> Response:
        return Response(doc, content_type="application/json", headers={"Cache-Control": "public, no-transform"})

    @app.route("/empty")
    async def empty() -> Response:
        return Response("", status=204)

    @app.route("/partial")
    async def partial() -> Response:
        return Response(
            doc[:1000],
            status=206,
            content_type="application/json",
            headers={"Content-Range": f"bytes 0-999/{len(doc)}"},
        )

    @app.route("/ranged")
    async def ranged() -> Response:
        response = Response(doc, content_type="text/plain")
        return await response.make_conditional(request, accept_ranges=True, complete_length=len(doc))

    @app.route("/small")
    async def small() -> Response:
        return Response(b"x" * int(request.args.get("n", "10")), content_type="text/plain")

    @app.route("/png")
    async def png() -> Response:
        return Response(b"\x89PNG" + bytes(5000), content_type="image/png")

    @app.route("/noise")
    async def noise() -> Response:
        return Response(os.urandom(5000), content_type="text/plain")

    @app.route("/untyped")
    async def untyped() -> Response:
        response = Response(doc)
        del response.headers["Content-Type"]
        return response

    @app.route("/fail")
    async def fail() -> None:
        abort(500)

    @app.errorhandler(500)
    async def big_error(error: Any) -> Response:
        return Response(doc, status=500, content_type="application/json")

    @app.errorhandler(404)
    async def not_found(error: Any) -> Response:
        return Response(b"<h1>not here</h1>" + b"<!-- padding -->" * 100, status=404, content_type="text/html")

    return app


def test_already_encoded_passes_untouched(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/encoded", ACCEPT)
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == doc  # encoded once, not twice


def test_content_encoding_identity_is_not_an_encoding(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/identity-coded", "gzip")
    assert response.headers.get_list("content-encoding") == ["gzip"]
    assert decode("gzip", body) == doc


def test_no_transform(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/no-transform", ACCEPT)
    assert "content-encoding" not in response.headers
    assert body == doc


def test_head_is_not_encoded_but_varies(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/doc", ACCEPT, method="HEAD")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(doc))
    assert response.headers["vary"] == "Accept-Encoding"
    assert body == b""


def test_204(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/empty", ACCEPT)
    assert response.status_code == 204
    assert "content-encoding" not in response.headers and body == b""


def test_206_response(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/partial", ACCEPT)
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert body == doc[:1000]


def test_range_request(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/ranged", ACCEPT, Range="bytes=10-2009")
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert body == doc[10:2010]
    # the same resource without Range is compressed
    response, body = fetch(server.url + "/ranged", ACCEPT)
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"


def test_range_request_answered_in_full_is_sent_identity(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/doc", ACCEPT, Range="bytes=0-99")  # the view ignores Range
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert body == doc


def test_min_size(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(make_app(doc, [Gzip(min_size=1000)]))
    response, body = fetch(server.url + "/small?n=999", ACCEPT)
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers  # too small for any client: it does not vary
    assert body == b"x" * 999
    response, body = fetch(server.url + "/small?n=1000", ACCEPT)
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == b"x" * 1000


def test_default_min_size_is_500(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b"", [Gzip()]))
    response, _ = fetch(server.url + "/small?n=499", ACCEPT)
    assert "content-encoding" not in response.headers
    response, _ = fetch(server.url + "/small?n=500", ACCEPT)
    assert response.headers["content-encoding"] == "gzip"


def test_min_size_per_algorithm(serve: Any, fetch: Any, decode: Any) -> None:
    server = serve(make_app(b"", [Br(min_size=5000), Gzip(min_size=100)]))
    response, body = fetch(server.url + "/small?n=1000", "br, gzip")  # too small for Br: Gzip
    assert response.headers["content-encoding"] == "gzip"
    response, body = fetch(server.url + "/small?n=6000", "br, gzip")
    assert response.headers["content-encoding"] == "br"
    assert decode("br", body) == b"x" * 6000


def test_unlisted_mimetype(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b""))
    response, body = fetch(server.url + "/png", ACCEPT)
    assert "content-encoding" not in response.headers and "vary" not in response.headers
    assert body == b"\x89PNG" + bytes(5000)


def test_custom_mimetypes_replace_the_defaults(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(make_app(doc, [Gzip(mimetypes=["image/*"])]))
    response, body = fetch(server.url + "/png", ACCEPT)
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == b"\x89PNG" + bytes(5000)
    response, body = fetch(server.url + "/doc", ACCEPT)
    assert "content-encoding" not in response.headers and body == doc


def test_no_content_type(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/untyped", ACCEPT)
    assert "content-type" not in response.headers
    assert "content-encoding" not in response.headers and body == doc


def test_incompressible_body_is_sent_as_is(serve: Any, fetch: Any) -> None:
    server = serve(make_app(b""))
    response, body = fetch(server.url + "/noise", "gzip")
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert len(body) == 5000


def test_error_pages_are_compressed(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(make_app(doc))
    response, body = fetch(server.url + "/fail", "gzip")
    assert response.status_code == 500
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == doc
    response, body = fetch(server.url + "/missing", "br")
    assert response.status_code == 404
    assert response.headers["content-encoding"] == "br"
    assert decode("br", body).startswith(b"<h1>not here</h1>")


def test_compression_none_installs_nothing(serve: Any, fetch: Any, doc: bytes) -> None:
    app = WebServer(__name__, compression=None, disable_plugins=["hello"])

    @app.route("/doc")
    async def document() -> Response:
        return Response(doc, content_type="application/json")

    server = serve(app)
    response, body = fetch(server.url + "/doc", ACCEPT)
    assert "content-encoding" not in response.headers and "vary" not in response.headers
    assert body == doc
    plugin = app.plugin_manager.get_plugin("compress")
    assert plugin.aeros_asgi_wrapper(app=app, settings=None) is None
    assert plugin.middlewares == []
