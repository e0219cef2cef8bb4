"""``cache_of(app)`` and ``CachingApp``: the typed routes to ``app.cache`` (docs/using-plugins.md)."""

from __future__ import annotations

import pytest
from aeros_cache import AppCache, CachingApp, SimpleCache, cache_of

from aeros import WebServer


async def test_cache_of_is_app_cache_and_caches_views() -> None:
    app = WebServer(__name__, cache=SimpleCache())
    cache = cache_of(app)
    assert cache is app.cache and isinstance(cache, AppCache)
    assert isinstance(app, CachingApp)
    calls: list[int] = []

    @app.route("/count")
    @cache(timeout=60)
    async def count() -> str:
        calls.append(1)
        return str(len(calls))

    client = app.test_client()
    answers = [await (await client.get("/count")).get_data(as_text=True) for _ in range(2)]
    assert answers == ["1", "1"] and len(calls) == 1


def test_an_app_without_the_plugin_has_no_cache_and_says_so() -> None:
    app = WebServer(__name__, disable_plugins=["cache"])
    assert not isinstance(app, CachingApp)
    with pytest.raises(LookupError, match="aeros-cache plugin is not enabled"):
        cache_of(app)
