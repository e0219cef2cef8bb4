"""CacheControl: the header strings, the contradictions, async and sync views."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from aeros import CacheControl, CacheTypes, SimpleCache, WebServer


@pytest.mark.parametrize(
    ("arguments", "header"),
    [
        ((CacheTypes.PUBLIC,), "public"),
        ((CacheTypes.PUBLIC,), "public"),
        (("public",), "public"),
        ((CacheTypes.PUBLIC, 60), "public, max-age=60"),
        ((CacheTypes.PRIVATE, 0), "private, max-age=0"),
        ((CacheTypes.NO_CACHE,), "no-cache"),
        ((CacheTypes.NO_CACHE, 0), "no-cache, max-age=0"),
        ((CacheTypes.NO_STORE,), "no-store"),
        ((CacheTypes.PUBLIC, 86400, True), "public, max-age=86400, immutable"),
        ((CacheTypes.PUBLIC, 60, False, True), "public, max-age=60, no-transform"),
        ((CacheTypes.NO_STORE, None, False, True), "no-store, no-transform"),
        (
            (CacheTypes.PUBLIC, 60, False, False, 30, 600),
            "public, max-age=60, stale-while-revalidate=30, stale-if-error=600",
        ),
        ((CacheTypes.PUBLIC, 60, False, False, None, False), "public, max-age=60"),
    ],
)
def test_header_strings(arguments: tuple, header: str) -> None:
    assert CacheControl(*arguments).header == header


@pytest.mark.parametrize(
    "keywords",
    [
        {"cache_type": CacheTypes.NO_STORE, "max_age": 60},
        {"cache_type": CacheTypes.NO_STORE, "max_age": 0},
        {"cache_type": CacheTypes.NO_STORE, "immutable": True},
        {"cache_type": CacheTypes.NO_STORE, "stale_while_revalidate": 10},
        {"cache_type": CacheTypes.NO_STORE, "stale_if_error": 10},
        {"cache_type": CacheTypes.NO_CACHE, "max_age": 60, "immutable": True},
        {"cache_type": CacheTypes.NO_CACHE, "stale_while_revalidate": 10},
        {"cache_type": CacheTypes.PUBLIC, "immutable": True},
        {"cache_type": CacheTypes.PUBLIC, "max_age": -1},
        {"cache_type": CacheTypes.PUBLIC, "max_age": 1.5},
        {"cache_type": CacheTypes.PUBLIC, "max_age": "60"},
        {"cache_type": CacheTypes.PUBLIC, "stale_if_error": True},
        {"cache_type": "sometimes"},
    ],
)
def test_contradictions_are_rejected_at_decoration_time(keywords: dict) -> None:
    with pytest.raises(ValueError):
        CacheControl(**keywords)


def test_enum_values_are_the_original_ones() -> None:
    assert [t.value for t in CacheTypes] == ["no-cache", "no-store", "public", "private"]
    assert [t.name for t in CacheTypes] == ["NO_CACHE", "NO_STORE", "PUBLIC", "PRIVATE"]


def test_on_async_and_sync_views_only_for_listed_statuses(serve: Any) -> None:
    app = WebServer(__name__, disable_plugins=["hello"])

    @app.route("/async")
    @CacheControl(CacheTypes.PUBLIC, max_age=60)
    async def async_view() -> str:
        return "a"

    @app.route("/sync")
    @CacheControl(CacheTypes.PRIVATE, max_age=0)
    def sync_view() -> str:
        return "s"

    @app.route("/missing")
    @CacheControl(CacheTypes.PUBLIC, max_age=60)
    async def missing() -> tuple[str, int]:
        return "no", 404

    @app.route("/created")
    @CacheControl(CacheTypes.PUBLIC, max_age=5, cache_on_status=[200, 201])
    async def created() -> tuple[str, int]:
        return "yes", 201

    server = serve(app)
    assert httpx.get(server.url + "/async").headers["cache-control"] == "public, max-age=60"
    sync = httpx.get(server.url + "/sync")
    assert sync.text == "s" and sync.headers["cache-control"] == "private, max-age=0"
    assert "cache-control" not in httpx.get(server.url + "/missing").headers
    assert httpx.get(server.url + "/created").headers["cache-control"] == "public, max-age=5"


def test_with_the_server_cache(serve: Any) -> None:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    calls = []

    @app.route("/public")
    @app.cache(timeout=60)
    @CacheControl(CacheTypes.PUBLIC, max_age=60)
    async def public() -> str:
        calls.append("public")
        return "p"

    @app.route("/private")
    @app.cache(timeout=60)
    @CacheControl(CacheTypes.PRIVATE, max_age=60)
    async def private() -> str:
        calls.append("private")
        return "q"

    server = serve(app)
    for _ in range(2):
        hit = httpx.get(server.url + "/public")
        httpx.get(server.url + "/private")
    assert hit.headers["cache-control"] == "public, max-age=60" and hit.headers["x-cache"] == "HIT"
    assert calls.count("public") == 1 and calls.count("private") == 2


def test_s_maxage_and_cdn_max_age_headers(serve: Any) -> None:
    control = CacheControl(CacheTypes.PUBLIC, max_age=60, s_maxage=600, cdn_max_age=3600)
    assert control.header == "public, max-age=60, s-maxage=600"
    app = WebServer(__name__, disable_plugins=["hello"])

    @app.route("/cdn")
    @control
    async def cdn() -> str:
        return "cdn"

    response = httpx.get(serve(app).url + "/cdn")
    assert response.headers["cache-control"] == "public, max-age=60, s-maxage=600"
    assert response.headers["cdn-cache-control"] == "max-age=3600"


@pytest.mark.parametrize(
    "keywords",
    [
        {"cache_type": CacheTypes.PRIVATE, "s_maxage": 10},
        {"cache_type": CacheTypes.PRIVATE, "cdn_max_age": 10},
        {"cache_type": CacheTypes.NO_STORE, "s_maxage": 10},
        {"cache_type": CacheTypes.NO_STORE, "cdn_max_age": 10},
        {"cache_type": CacheTypes.PUBLIC, "s_maxage": -1},
        {"cache_type": CacheTypes.PUBLIC, "cdn_max_age": 1.5},
    ],
)
def test_shared_cache_directives_that_contradict_are_refused(keywords: dict) -> None:
    with pytest.raises(ValueError):
        CacheControl(**keywords)
