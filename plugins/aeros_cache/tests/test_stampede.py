"""Single flight: concurrent misses run the view once; stale-while-revalidate."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx

from aeros import SimpleCache, WebServer


def slow_app(delay: float, **cache_keywords: Any) -> tuple[WebServer, list[int]]:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    calls: list[int] = []

    @app.route("/slow")
    @app.cache(**cache_keywords)
    async def slow() -> dict:
        calls.append(1)
        number = len(calls)
        await asyncio.sleep(delay)
        return {"run": number}

    return app, calls


async def test_fifty_concurrent_misses_run_the_view_once(serve: Any) -> None:
    app, calls = slow_app(0.5, timeout=60)
    server = serve(app)
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.get("/slow") for _ in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert {r.json()["run"] for r in responses} == {1}
    assert len(calls) == 1
    assert sorted(r.headers["x-cache"] for r in responses).count("MISS") == 1


async def test_waiting_requests_run_the_view_when_the_answer_cannot_be_shared(serve: Any) -> None:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    calls: list[int] = []

    @app.route("/fails")
    @app.cache(timeout=60)
    async def fails() -> tuple[str, int]:
        calls.append(1)
        await asyncio.sleep(0.2)
        return "later", 503

    server = serve(app)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        responses = await asyncio.gather(*(client.get("/fails") for _ in range(5)))
    assert [r.status_code for r in responses] == [503] * 5
    assert len(calls) == 5


async def test_stale_while_revalidate_serves_old_entry_while_one_refreshes_in_the_background(serve: Any) -> None:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    calls: list[int] = []
    release = threading.Event()

    @app.route("/news")
    @app.cache(timeout=1, stale_while_revalidate=30)
    async def news() -> dict:
        calls.append(1)
        number = len(calls)
        if number == 2:  # the refresh waits until the test has seen the stale answers
            deadline = time.monotonic() + 10
            while not release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return {"run": number}

    server = serve(app)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await client.get("/news")).json() == {"run": 1}
        await asyncio.sleep(1.1)  # now stale
        first = await client.get("/news")  # finds it stale: answered at once, a refresh starts behind
        assert first.json() == {"run": 1} and first.headers["x-cache"] == "STALE"
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert len(calls) == 2  # the background refresh runs (and is held by the test)...
        during = await asyncio.gather(*(client.get("/news") for _ in range(10)))
        assert all(r.json() == {"run": 1} for r in during)  # ...everyone gets the old entry at once
        assert all(r.headers["x-cache"] == "STALE" for r in during)
        release.set()
        deadline = time.monotonic() + 5
        latest = await client.get("/news")
        while latest.json() != {"run": 2} and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            latest = await client.get("/news")
        assert latest.json() == {"run": 2} and latest.headers["x-cache"] == "HIT"
    assert len(calls) == 2


def test_a_leader_that_goes_away_does_not_block_its_key(serve: Any) -> None:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    calls: list[int] = []
    cancelled = threading.Event()

    @app.route("/hang")
    @app.cache(timeout=60)
    async def hang() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                await asyncio.sleep(3600)  # the first caller gives up long before this ends
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return "done"

    server = serve(app)
    try:
        httpx.get(server.url + "/hang", timeout=0.3)
    except httpx.TimeoutException:
        pass
    assert cancelled.wait(10), "the disconnect did not cancel the first request"
    response = httpx.get(server.url + "/hang", timeout=10)  # far less than the 30 s a follower may wait
    assert response.status_code == 200 and response.text == "done"
    assert len(calls) == 2
