"""The cache against a real server: hits, misses, expiry, keys, HEAD, 304, invalidation."""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
import pytest
from quart import Response, request

from aeros import WebServer


def make_app(**keywords: Any) -> WebServer:
    from aeros import SimpleCache

    keywords.setdefault("cache", SimpleCache())
    keywords.setdefault("disable_plugins", ["hello"])
    return WebServer(__name__, **keywords)


def counting_app(**cache_keywords: Any) -> tuple[WebServer, dict[str, int]]:
    app = make_app()
    calls = {"n": 0}

    @app.route("/count")
    @app.cache(**cache_keywords)
    async def count() -> dict:
        calls["n"] += 1
        return {"n": calls["n"], "args": dict(request.args)}

    return app, calls


def test_miss_then_hit(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    first = httpx.get(server.url + "/count")
    second = httpx.get(server.url + "/count")
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json() == {"n": 1, "args": {}}
    assert int(second.headers["age"]) >= 0
    assert calls["n"] == 1
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["etag"].startswith('"')  # strong


def test_hit_is_answered_at_the_asgi_edge(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    for _ in range(3):
        assert httpx.get(server.url + "/count").status_code == 200
    assert calls["n"] == 1
    # the first request misses, the second fills the edge index through Quart; the third is an edge hit
    assert app.cache.stats["edge_hits"] >= 1


def test_edge_steps_aside_for_before_request_functions(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    seen = []

    @app.before_request
    async def authenticate() -> None:
        seen.append(request.path)

    server = serve(app)
    for _ in range(4):
        assert httpx.get(server.url + "/count").headers["x-cache"] in ("HIT", "MISS")
    assert calls["n"] == 1
    assert app.cache.stats["edge_hits"] == 0
    assert len(seen) == 4  # every hit went through Quart, past the app's before_request


def test_blueprint_before_request_makes_the_edge_step_aside(serve: Any) -> None:
    from quart import Blueprint

    app = make_app()
    blueprint = Blueprint("private", __name__)
    seen = []

    @blueprint.before_request
    async def check() -> None:
        seen.append(1)

    @blueprint.route("/bp")
    @app.cache(timeout=60)
    async def bp_view() -> str:
        return "bp"

    app.register_blueprint(blueprint)
    server = serve(app)
    for _ in range(3):
        assert httpx.get(server.url + "/bp").text == "bp"
    assert len(seen) == 3
    assert app.cache.stats["edge_hits"] == 0
    assert app.cache.stats["hits"] == 2


def test_expiry(serve: Any) -> None:
    app, calls = counting_app(timeout=1)
    server = serve(app)
    assert httpx.get(server.url + "/count").json()["n"] == 1
    assert httpx.get(server.url + "/count").json()["n"] == 1
    time.sleep(1.2)
    again = httpx.get(server.url + "/count")
    assert again.headers["x-cache"] == "MISS"
    assert again.json()["n"] == 2


def test_query_string_is_part_of_the_key_as_sent(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    page1 = httpx.get(server.url + "/count?page=1&size=10")
    page2 = httpx.get(server.url + "/count?page=2&size=10")
    assert page1.json()["args"] == {"page": "1", "size": "10"}
    assert page2.json()["args"] == {"page": "2", "size": "10"}  # not page 1's answer
    again = httpx.get(server.url + "/count?page=1&size=10")
    assert again.headers["x-cache"] == "HIT" and again.json() == page1.json()
    # reordering is not lossless (the view can see the order): another entry
    reordered = httpx.get(server.url + "/count?size=10&page=1")
    assert reordered.headers["x-cache"] == "MISS"
    assert calls["n"] == 3


def test_query_string_false_keys_on_the_path(serve: Any) -> None:
    app, calls = counting_app(timeout=60, query_string=False)
    server = serve(app)
    first = httpx.get(server.url + "/count?page=1")
    second = httpx.get(server.url + "/count?page=2")
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json()
    assert calls["n"] == 1


def test_host_is_part_of_the_key(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    a = httpx.get(server.url + "/count", headers={"Host": "a.example"})
    b = httpx.get(server.url + "/count", headers={"Host": "b.example"})
    assert a.headers["x-cache"] == b.headers["x-cache"] == "MISS"
    assert httpx.get(server.url + "/count", headers={"Host": "a.example"}).headers["x-cache"] == "HIT"
    assert calls["n"] == 2


def test_head_is_served_from_the_get_entry(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    get = httpx.get(server.url + "/count")
    for _ in range(2):  # once through Quart, once at the edge
        head = httpx.head(server.url + "/count")
        assert head.status_code == 200
        assert head.headers["x-cache"] == "HIT"
        assert head.content == b""
        assert head.headers["content-length"] == str(len(get.content))
        assert head.headers["etag"] == get.headers["etag"]
    assert calls["n"] == 1
    assert app.cache.stats["edge_hits"] == 1 and app.cache.stats["hits"] == 1


def test_head_miss_runs_the_view_but_does_not_store(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    head = httpx.head(server.url + "/count")
    assert head.headers["x-cache"] == "MISS"
    assert httpx.get(server.url + "/count").headers["x-cache"] == "MISS"
    assert calls["n"] == 2


def test_if_none_match_gets_304_without_the_view(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    etag = httpx.get(server.url + "/count").headers["etag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = httpx.get(server.url + "/count", headers={"If-None-Match": value})
        assert response.status_code == 304, value
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["x-cache"] == "HIT"
    other = httpx.get(server.url + "/count", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert calls["n"] == 1


def test_view_etag_is_kept(serve: Any) -> None:
    app = make_app()

    @app.route("/tagged")
    @app.cache(timeout=60)
    async def tagged() -> Response:
        return Response("x", headers={"ETag": '"v1"'})

    server = serve(app)
    assert httpx.get(server.url + "/tagged").headers["etag"] == '"v1"'
    assert httpx.get(server.url + "/tagged", headers={"If-None-Match": '"v1"'}).status_code == 304


def test_sync_view(serve: Any) -> None:
    app = make_app()
    calls = []

    @app.route("/sync")
    @app.cache(timeout=60)
    def sync_view() -> str:
        calls.append(1)
        return "plain def"

    server = serve(app)
    assert httpx.get(server.url + "/sync").text == "plain def"
    hit = httpx.get(server.url + "/sync")
    assert hit.text == "plain def" and hit.headers["x-cache"] == "HIT"
    assert len(calls) == 1


def test_vary_is_honoured(serve: Any) -> None:
    app = make_app()
    calls = []

    @app.route("/lang")
    @app.cache(timeout=60)
    async def lang() -> Response:
        calls.append(1)
        language = request.headers.get("Accept-Language", "en")
        return Response(f"hello in {language}", headers={"Vary": "Accept-Language"})

    server = serve(app)
    de = httpx.get(server.url + "/lang", headers={"Accept-Language": "de"})
    fr = httpx.get(server.url + "/lang", headers={"Accept-Language": "fr"})
    assert de.text == "hello in de" and fr.text == "hello in fr"
    again_de = httpx.get(server.url + "/lang", headers={"Accept-Language": "de"})
    again_fr = httpx.get(server.url + "/lang", headers={"Accept-Language": "fr"})
    assert again_de.text == "hello in de" and again_de.headers["x-cache"] == "HIT"
    assert again_fr.text == "hello in fr" and again_fr.headers["x-cache"] == "HIT"
    assert len(calls) == 2


def test_vary_star_is_never_stored(serve: Any) -> None:
    app = make_app()
    calls = []

    @app.route("/star")
    @app.cache(timeout=60)
    async def star() -> Response:
        calls.append(1)
        return Response("x", headers={"Vary": "*"})

    server = serve(app)
    for _ in range(2):
        assert httpx.get(server.url + "/star").headers["x-cache"] == "MISS"
    assert len(calls) == 2


async def test_delete_view_and_clear(serve: Any) -> None:
    app = make_app()
    calls = {"a": 0, "b": 0}

    @app.route("/a")
    @app.cache(timeout=60)
    async def view_a() -> str:
        calls["a"] += 1
        return f"a{calls['a']}"

    @app.route("/b")
    @app.cache(timeout=60)
    async def view_b() -> str:
        calls["b"] += 1
        return f"b{calls['b']}"

    server = serve(app)
    async with httpx.AsyncClient(base_url=server.url) as client:
        await client.get("/a"), await client.get("/b"), await client.get("/a?x=1")
        assert await app.cache.delete(view_a) == 2
        assert (await client.get("/a")).text == "a3"
        assert (await client.get("/b")).headers["x-cache"] == "HIT"
        assert await app.cache.delete("view//b") == 1  # the key prefix
        assert (await client.get("/b")).text == "b2"
        await client.get("/a")
        await app.clear_cache()
        assert (await client.get("/a")).text == "a4"
        assert (await client.get("/b")).text == "b3"
    with pytest.raises(ValueError):
        await app.cache.delete(lambda: None)


def test_clear_cache_sync(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    httpx.get(server.url + "/count")
    app.clear_cache_sync()
    assert httpx.get(server.url + "/count").headers["x-cache"] == "MISS"
    assert calls["n"] == 2


def test_unless_and_forced_update(serve: Any) -> None:
    app = make_app()
    calls = []

    @app.route("/u")
    @app.cache(
        timeout=60,
        unless=lambda: request.args.get("fresh") == "1",
        forced_update=lambda: request.args.get("refresh") == "1",
        query_string=False,
    )
    async def u() -> str:
        calls.append(1)
        return str(len(calls))

    server = serve(app)
    assert httpx.get(server.url + "/u").text == "1"
    assert httpx.get(server.url + "/u").text == "1"
    assert httpx.get(server.url + "/u?fresh=1").text == "2"  # bypassed, not stored
    assert httpx.get(server.url + "/u").text == "1"
    assert httpx.get(server.url + "/u?refresh=1").text == "3"  # forced: runs and replaces
    assert httpx.get(server.url + "/u").text == "3"
    assert app.cache.stats["edge_hits"] == 0  # callbacks need the request: never at the edge


def test_response_filter_decides_what_is_stored(serve: Any) -> None:
    app = make_app()
    calls = []

    @app.route("/missing")
    @app.cache(timeout=60, response_filter=lambda response: response.status_code in (200, 404))
    async def missing() -> tuple[str, int]:
        calls.append(1)
        return "gone", 404

    server = serve(app)
    assert httpx.get(server.url + "/missing").status_code == 404
    again = httpx.get(server.url + "/missing")
    assert again.status_code == 404 and again.headers["x-cache"] == "HIT"
    assert len(calls) == 1


def test_cache_none_means_no_cache_and_no_request_path(serve: Any) -> None:
    app = make_app(cache=None)
    calls = []

    @app.route("/v")
    @app.cache(timeout=60)
    async def v() -> str:
        calls.append(1)
        return "v"

    from aeros_cache.plugin import CachePlugin

    pipeline = app.request_pipeline
    steps = [step.handler for step in pipeline.before] + [step.transform for step in pipeline.after]
    assert not [step for step in steps if isinstance(getattr(step, "__self__", None), CachePlugin)]
    server = serve(app)
    for _ in range(2):
        response = httpx.get(server.url + "/v")
        assert "x-cache" not in response.headers
    assert len(calls) == 2
    app.clear_cache_sync()


def test_bad_cache_value_is_rejected() -> None:
    with pytest.raises(TypeError, match="SimpleCache"):
        make_app(cache="redis://localhost")


def test_names_from_aeros() -> None:
    import aeros_cache

    import aeros

    for name in ("SimpleCache", "FileSystemCache", "FilesystemCache", "RedisCache", "CacheControl", "CacheTypes"):
        assert name in aeros_cache.__all__
        assert getattr(aeros, name) is getattr(aeros_cache, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aeros.FilesystemCache("unused-dir")
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_simple_cache_is_bounded_lru() -> None:
    import asyncio

    from aeros_cache.entry import Entry

    from aeros import SimpleCache

    cache = SimpleCache(threshold=2)

    async def scenario() -> list[bool]:
        await cache.set("a", Entry(body=b"a"), None)
        await cache.set("b", Entry(body=b"b"), None)
        await cache.get("a")  # a is now the most recently used
        await cache.set("c", Entry(body=b"c"), None)
        return [await cache.get(k) is not None for k in ("a", "b", "c")]

    assert asyncio.run(scenario()) == [True, False, True]


def test_http2_keys_on_the_authority(serve: Any) -> None:
    app, calls = counting_app(timeout=60)
    server = serve(app)
    with httpx.Client(http1=False, http2=True, base_url=server.url) as client:
        a = client.get("/count", headers={"Host": "a.example"})
        assert a.http_version == "HTTP/2"
        b = client.get("/count", headers={"Host": "b.example"})
        again = client.get("/count", headers={"Host": "a.example"})
    assert (a.headers["x-cache"], b.headers["x-cache"], again.headers["x-cache"]) == ("MISS", "MISS", "HIT")
    assert calls["n"] == 2


def test_flask_caching_config_names_still_work(tmp_path: Any) -> None:
    from aeros import FileSystemCache, RedisCache, SimpleCache

    simple = SimpleCache(config={"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 7, "CACHE_DEFAULT_TIMEOUT": 9})
    assert (simple.threshold, simple.default_timeout) == (7, 9)
    files = FileSystemCache(config={"CACHE_DIR": str(tmp_path), "CACHE_DEFAULT_TIMEOUT": 5})
    assert (files.directory, files.default_timeout) == (str(tmp_path), 5)
    redis = RedisCache(
        config={
            "CACHE_REDIS_HOST": "10.0.0.1",
            "CACHE_REDIS_PORT": 6380,
            "CACHE_REDIS_DB": 2,
            "CACHE_KEY_PREFIX": "app:",
        }
    )
    assert (redis.host, redis.port, redis.db, redis.key_prefix) == ("10.0.0.1", 6380, 2, "app:")
    with pytest.raises(TypeError, match="directory"):
        FileSystemCache()


def test_uncached_routes_never_consult_the_backend(serve: Any) -> None:
    from aeros import SimpleCache

    class CountingCache(SimpleCache):
        lookups = 0

        def get_now(self, key: str) -> Any:
            CountingCache.lookups += 1
            return super().get_now(key)

    app = make_app(cache=CountingCache())

    @app.route("/plain")
    async def plain() -> str:
        return "plain"

    @app.route("/cached")
    @app.cache(timeout=60)
    async def cached() -> str:
        return "cached"

    server = serve(app)
    for _ in range(5):
        assert httpx.get(server.url + "/plain").text == "plain"
        assert "x-cache" not in httpx.get(server.url + "/plain").headers
    assert CountingCache.lookups == 0
    for _ in range(3):
        httpx.get(server.url + "/cached")
    assert CountingCache.lookups >= 3


def test_views_the_cache_does_not_touch_pass_untouched(serve: Any) -> None:
    """An app with a cache but no cached view gets no edge layer; its views answer without X-Cache."""
    from aeros_core.runner.settings import ServerSettings

    app = make_app()

    @app.route("/plain")
    async def plain() -> dict:
        return {"args": dict(request.args)}

    plugin = app.plugin_manager.get_plugin("cache")
    assert plugin.aeros_asgi_wrapper(app=app, settings=ServerSettings.external(app)) is None
    server = serve(app)
    for i in range(3):
        response = httpx.get(server.url + "/plain", params={"i": i})
        assert response.json() == {"args": {"i": str(i)}}
        assert "x-cache" not in response.headers and "etag" not in response.headers
    assert app.cache.stats == {"edge_hits": 0, "hits": 0, "stale": 0, "misses": 0, "stores": 0}


def test_cached_and_uncached_views_of_one_app(serve: Any) -> None:
    app, calls = counting_app(timeout=60)

    @app.route("/plain")
    async def plain() -> str:
        return "plain"

    server = serve(app)
    for _ in range(3):
        assert "x-cache" not in httpx.get(server.url + "/plain").headers
        assert httpx.get(server.url + "/count").status_code == 200
    assert calls["n"] == 1
    assert app.cache.stats["edge_hits"] >= 1 and app.cache.stats["misses"] == 1
