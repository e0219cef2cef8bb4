"""With the cache plugin: hits (answered at the ASGI edge) are compressed from the variant LRU."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Response

from aeros import Br, Gzip, WebServer

pytest.importorskip("aeros_cache")


def make_app(doc: bytes, **options: Any) -> tuple[WebServer, dict[str, int]]:
    from aeros import SimpleCache

    app = WebServer(__name__, cache=SimpleCache(), compression=[Br(), Gzip()], disable_plugins=["hello"], **options)
    calls = {"n": 0}

    @app.route("/doc")
    @app.cache(timeout=60)
    async def document() -> Response:
        calls["n"] += 1
        return Response(doc, content_type="application/json")

    return app, calls


def test_cache_hits_are_compressed_once_per_encoding(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    app, calls = make_app(doc)
    server = serve(app)
    seen = {}
    for _ in range(3):
        for encoding in ("gzip", "br", None):
            response, body = fetch(server.url + "/doc", encoding)
            assert response.status_code == 200
            assert response.headers.get("content-encoding") == encoding
            assert response.headers["vary"] == "Accept-Encoding"
            assert decode(encoding, body) == doc
            etag = response.headers["etag"]
            assert etag.startswith('W/"') if encoding else etag.startswith('"')
            seen.setdefault(encoding, set()).add(body)
    assert calls["n"] == 1  # the view ran once: everything else came from the cache
    assert all(len(bodies) == 1 for bodies in seen.values())
    cache = app.plugin_manager.get_plugin("cache")
    assert cache.stats["edge_hits"] >= 4
    variants = app.plugin_manager.get_plugin("compress").middlewares[0].variants
    # the first (view) response and each later hit carry the cache's strong ETag: the LRU
    # compressed gzip and br once each, and served the other four from memory
    assert variants.stats()["misses"] == 2
    assert variants.stats()["hits"] == 4


def test_conditional_hit_gets_the_weak_etag_back(serve: Any, fetch: Any, doc: bytes) -> None:
    app, _ = make_app(doc)
    server = serve(app)
    first, _ = fetch(server.url + "/doc", "gzip")
    fetch(server.url + "/doc", "gzip")  # now answered at the edge
    response, body = fetch(server.url + "/doc", "gzip", If_None_Match=first.headers["etag"])
    assert response.status_code == 304 and body == b""
    assert response.headers["etag"] == first.headers["etag"]


def test_variant_cache_can_be_turned_off(serve: Any, fetch: Any, decode: Any, doc: bytes) -> None:
    app, _ = make_app(doc, compression_cache=0)
    server = serve(app)
    for _ in range(3):
        response, body = fetch(server.url + "/doc", "gzip")
        assert decode("gzip", body) == doc
    assert app.plugin_manager.get_plugin("compress").middlewares[0].variants is None
