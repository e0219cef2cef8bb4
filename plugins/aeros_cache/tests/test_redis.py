"""RedisCache against a real redis-server: shared between processes, and surviving a dead server."""

from __future__ import annotations

import time
from typing import Any

import httpx

from aeros import RedisCache, WebServer

# the key holds the Host: behind one load balancer, every process sees the same one
SAME_HOST = {"Host": "app.example"}


def redis_app(url: str) -> tuple[WebServer, list[int]]:
    app = WebServer(__name__, cache=RedisCache(url=url), disable_plugins=["hello"])
    calls: list[int] = []

    @app.route("/r")
    @app.cache(timeout=60)
    async def r() -> dict:
        calls.append(1)
        return {"calls": len(calls)}

    return app, calls


def test_hit_miss_and_pool_per_loop(redis_server: Any, serve: Any) -> None:
    app, calls = redis_app(redis_server.url)
    server = serve(app)
    assert httpx.get(server.url + "/r").headers["x-cache"] == "MISS"
    for _ in range(3):
        assert httpx.get(server.url + "/r").headers["x-cache"] == "HIT"
    assert len(calls) == 1
    assert app.cache.stats["edge_hits"] >= 1
    assert len(app.cache.backend._clients) == 1  # opened at startup in the server's loop
    other = serve(app)  # the same app in a second thread: a loop, and a pool, of its own
    assert httpx.get(other.url + "/r", headers={"Host": server.url[7:]}).headers["x-cache"] == "HIT"
    assert len(app.cache.backend._clients) == 2
    server.stop(timeout=10)
    other.stop(timeout=10)
    assert app.cache.backend._clients == {}  # closed at shutdown


def test_shared_between_two_processes(redis_server: Any, app_process: Any) -> None:
    first = app_process(f"redis:{redis_server.url}")
    second = app_process(f"redis:{redis_server.url}")
    miss = httpx.get(first.url + "/pid", headers=SAME_HOST, timeout=10)
    hit = httpx.get(second.url + "/pid", headers=SAME_HOST, timeout=10)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.json() == miss.json() and hit.json()["pid"] == first.process.pid


def test_shared_between_two_servers_and_clear(redis_server: Any, serve: Any) -> None:
    app_a, calls_a = redis_app(redis_server.url)
    app_b, calls_b = redis_app(redis_server.url)
    a, b = serve(app_a), serve(app_b)
    redis_server.command("SET", "someone-else", "keep me")
    assert httpx.get(a.url + "/r", headers=SAME_HOST).headers["x-cache"] == "MISS"
    assert httpx.get(b.url + "/r", headers=SAME_HOST).headers["x-cache"] == "HIT"
    assert (len(calls_a), len(calls_b)) == (1, 0)
    app_b.clear_cache_sync()  # from sync code, in a loop of its own
    assert httpx.get(a.url + "/r", headers=SAME_HOST).headers["x-cache"] == "MISS"
    assert redis_server.command("GET", "someone-else") == b"$7\r\nkeep me\r\n"  # clear is namespaced


def test_redis_killed_then_restarted(redis_server: Any, serve: Any, cache_log: Any) -> None:
    app, calls = redis_app(redis_server.url)
    server = serve(app)
    assert httpx.get(server.url + "/r").headers["x-cache"] == "MISS"
    assert httpx.get(server.url + "/r").headers["x-cache"] == "HIT"
    redis_server.kill()
    for _ in range(6):
        response = httpx.get(server.url + "/r", timeout=10)
        assert response.status_code == 200
        assert response.headers["x-cache"] == "MISS"
    # one message per kind of operation that went from working to failing, whatever the number of requests
    assert len(cache_log.messages("failed on reads")) == 1
    assert len(cache_log.messages("failed on writes")) <= 1
    redis_server.start()  # same port
    deadline = time.monotonic() + 10
    states = []
    while time.monotonic() < deadline:
        states.append(httpx.get(server.url + "/r", timeout=10).headers["x-cache"])
        if states[-1] == "HIT":
            break
        time.sleep(0.2)
    assert states[-1] == "HIT"
    assert cache_log.messages("works again")


def test_redis_down_from_the_start(serve: Any, cache_log: Any) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app, calls = redis_app(f"redis://127.0.0.1:{port}/0")
    server = serve(app)
    for _ in range(3):
        response = httpx.get(server.url + "/r", timeout=10)
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
    assert len(calls) == 3
    # one message per kind of operation that went from working to failing, whatever the number of requests
    assert len(cache_log.messages("failed on reads")) == 1
    assert len(cache_log.messages("failed on writes")) <= 1


async def test_delete_and_clear_from_another_loop(redis_server: Any, serve: Any) -> None:
    app = WebServer(__name__, cache=RedisCache(url=redis_server.url), disable_plugins=["hello"])
    calls: list[str] = []

    @app.route("/one")
    @app.cache(timeout=60)
    async def one() -> str:
        calls.append("one")
        return "1"

    @app.route("/two")
    @app.cache(timeout=60)
    async def two() -> str:
        calls.append("two")
        return "2"

    server = serve(app)
    async with httpx.AsyncClient(base_url=server.url) as client:
        for path in ("/one", "/one?a=1", "/two"):
            await client.get(path)
        assert await app.cache.delete(one) == 2  # from the test's loop: a client of its own, closed after
        assert (await client.get("/one")).headers["x-cache"] == "MISS"
        assert (await client.get("/two")).headers["x-cache"] == "HIT"
        assert await app.clear_cache() is True
        assert (await client.get("/two")).headers["x-cache"] == "MISS"
    assert len(app.cache.backend._clients) == 1  # only the server's own pool
