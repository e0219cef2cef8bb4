"""Accept-Encoding negotiation (RFC 9110 §12.5.3) against a real server, and the parser alone."""

from __future__ import annotations

from typing import Any

import pytest
from aeros_compress.negotiate import parse_accept_encoding, rank
from quart import Response

from aeros import Br, Gzip, WebServer, Zstd


def json_app(doc: bytes, compression: Any) -> WebServer:
    app = WebServer(__name__, compression=compression, disable_plugins=["hello"])

    @app.route("/doc")
    async def document() -> Response:
        return Response(doc, content_type="application/json")

    return app


# (Accept-Encoding sent, Content-Encoding expected) with compression=[Br(), Gzip(), Zstd()]
CASES = [
    ("gzip", "gzip"),
    ("br", "br"),
    ("zstd", "zstd"),
    ("gzip, deflate, br, zstd", "br"),  # browsers: all q=1, the server's first choice wins the tie
    ("zstd, gzip", "gzip"),  # br not acceptable: the next in the server order wins the tie
    ("gzip;q=0.5, br;q=0.8", "br"),
    ("gzip;q=1.0, br;q=0.8", "gzip"),
    ("br;q=0.5, gzip;q=0.5, zstd;q=0.5", "br"),  # tie: first listed on the server
    ("br;q=0, gzip", "gzip"),  # q=0 excludes (quart-compress sent br here: substring match)
    ("br;q=0.000, gzip;q=0.001", "gzip"),
    ("GZIP", "gzip"),  # tokens are case-insensitive
    ("x-gzip", "gzip"),  # RFC 9110 §8.4.1.3
    ("gzip ; q=0.7 , br ; q=0.2", "gzip"),  # whitespace around parameters
    ("*", "br"),
    ("*;q=0.1, gzip;q=0.5", "gzip"),
    ("gzip;q=0, *", "br"),
    ("br;q=0, zstd;q=0, *;q=0.3", "gzip"),
    ("*;q=0", None),  # nothing acceptable, identity not excluded explicitly: identity (never 406)
    ("*;q=0, identity;q=0", None),  # nothing at all acceptable: identity anyway, 200
    ("identity", None),
    ("identity, gzip;q=0.5", None),  # identity preferred (q=1 > 0.5)
    ("gzip, identity;q=0.5", "gzip"),
    ("gzip, identity", "gzip"),  # tie with identity: compress
    ("deflate", None),  # not offered
    ("compress, sdch", None),
    ("gzip;q=abc, br", "br"),  # malformed weight: that entry is ignored
    ("gzip;q=2", None),  # out of range: ignored
    ("", None),  # empty: identity only
    (",,;", None),
]


@pytest.mark.parametrize("accept,expected", CASES)
def test_negotiation_picks(serve: Any, fetch: Any, decode: Any, doc: bytes, accept: str, expected: str | None) -> None:
    server = serve(json_app(doc, [Br(), Gzip(), Zstd()]))
    response, body = fetch(server.url + "/doc", accept)
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == expected
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) == len(body)
    assert decode(expected, body) == doc
    if expected is not None:
        assert len(body) < len(doc)


def test_no_accept_encoding_header_is_identity(serve: Any, fetch: Any, doc: bytes) -> None:
    server = serve(json_app(doc, [Br(), Gzip()]))
    response, body = fetch(server.url + "/doc")  # the client sends no Accept-Encoding at all
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert body == doc


def test_server_order_decides_ties(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(json_app(doc, [Zstd(), Gzip(), Br()]))
    response, body = fetch(server.url + "/doc", "br, gzip, zstd")
    assert response.headers["content-encoding"] == "zstd"
    assert decode("zstd", body) == doc


def test_single_algorithm_serves_only_its_coding(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    server = serve(json_app(doc, Gzip(level=6)))
    response, body = fetch(server.url + "/doc", "br")
    assert "content-encoding" not in response.headers and body == doc
    response, body = fetch(server.url + "/doc", "br, gzip;q=0.1")
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == doc


def test_several_accept_encoding_lines_are_one_list(serve: Any, doc: bytes, decode: Any) -> None:
    import httpx

    server = serve(json_app(doc, [Br(), Gzip()]))
    with httpx.Client(timeout=10) as client:
        del client.headers["accept-encoding"]
        request = client.build_request(
            "GET", server.url + "/doc", headers=[("Accept-Encoding", "br;q=0"), ("Accept-Encoding", "gzip")]
        )
        response = client.send(request, stream=True)
        body = b"".join(response.iter_raw())
        response.close()
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == doc


# --- the parser alone ------------------------------------------------------------------------


def test_parse_weights() -> None:
    assert parse_accept_encoding("gzip;q=0.5, Br, *;q=0") == {"gzip": 0.5, "br": 1.0, "*": 0.0}
    assert parse_accept_encoding("x-gzip;Q=0.3") == {"gzip": 0.3}
    assert parse_accept_encoding("gzip;q=nan, br;q=-1, zstd;q=") == {}
    assert parse_accept_encoding("gzip, gzip;q=0") == {"gzip": 1.0}  # the first entry counts


@pytest.mark.parametrize(
    "accept,expected",
    [
        (None, ()),
        ("gzip, br", (0, 1)),
        ("br, gzip;q=0.9", (1, 0)),
        ("*", (0, 1, 2)),
        ("*;q=0.5, identity", ()),
        ("zstd;q=0.2, *;q=0.1, identity;q=0.15", (2,)),
    ],
)
def test_rank(accept: str | None, expected: tuple[int, ...]) -> None:
    assert rank(accept, ("gzip", "br", "zstd")) == expected
