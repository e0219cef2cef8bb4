"""The cache across a fleet: real redis-server, three instances x two worker processes.

Counting is done where every process sees it (Redis ``INCR`` in the view), never in a test's memory.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
import pytest

SAME_HOST = {"Host": "app.example"}  # behind one load balancer every instance sees the same Host


def redis_client(redis_server: Any) -> Any:
    import redis

    return redis.Redis.from_url(redis_server.url)


async def concurrent_gets(urls: list[str], path: str, count: int, headers: dict[str, str]) -> list[httpx.Response]:
    """``count`` GETs at once, spread over ``urls``, each on a new connection (so over the workers too)."""
    limits = httpx.Limits(max_keepalive_connections=0, max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.get(urls[n % len(urls)] + path, headers=headers) for n in range(count)))


def wait_for(condition: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Shared:
    """A fleet on one shared backend (``redis`` or ``fs``) and the view-run counts of its views."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
        self.kind = kind
        if kind == "redis":
            self.redis_server = request.getfixturevalue("redis_server")
            self.spec = f"redis:{self.redis_server.url}"
            self.env: dict[str, str] = {}
        else:
            self.spec = f"fs:{tmp_path / 'cache'}"
            self.runs_file = tmp_path / "runs"
            self.env = {"RUNS_FILE": str(self.runs_file)}

    def runs(self, view: str) -> int:
        if self.kind == "redis":
            return int(redis_client(self.redis_server).get(f"runs:{view}") or 0)
        if not self.runs_file.exists():
            return 0
        return sum(1 for line in self.runs_file.read_text().splitlines() if line.split()[0] == view)


@pytest.fixture(params=["redis", "fs"])
def shared(request: pytest.FixtureRequest, tmp_path: Any) -> Shared:
    return Shared(request.param, request, tmp_path)


def test_sixty_concurrent_misses_on_three_instances_run_the_view_once(shared: Shared, fleet: Any) -> None:
    instances = [fleet(shared.spec, 2, shared.env) for _ in range(3)]
    responses = asyncio.run(concurrent_gets([i.url for i in instances], "/one", 60, SAME_HOST))
    assert [r.status_code for r in responses] == [200] * 60
    assert len({r.content for r in responses}) == 1  # every request got the one answer
    runs = shared.runs("one")
    print(f"{shared.kind}: view runs for 60 concurrent misses over 3 instances x 2 workers: {runs}")
    assert runs == 1
    assert sorted({r.headers["x-cache"] for r in responses}) in (["HIT", "MISS"], ["MISS"])


def test_a_killed_lock_holder_blocks_its_key_no_longer_than_the_lock_expiry(shared: Shared, fleet: Any) -> None:
    env = {"LOCK_TIMEOUT": "2", **shared.env}
    holder = fleet(shared.spec, 1, env)
    other = fleet(shared.spec, 1, env)

    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            first = asyncio.ensure_future(http.get(holder.url + "/hang", headers=SAME_HOST))
            await asyncio.to_thread(wait_for, lambda: shared.runs("hang") == 1, 15, "the holder's view")
            waiting = asyncio.ensure_future(http.get(other.url + "/hang", headers=SAME_HOST))
            await asyncio.sleep(0.3)  # the other instance is now waiting for the lock (not a timing assertion)
            assert not waiting.done()
            holder.kill()  # SIGKILL: nothing is released; the lock expires after 2 s
            with pytest.raises(httpx.HTTPError):
                await first
            return await waiting

    started = time.monotonic()
    response = asyncio.run(scenario())
    assert response.status_code == 200 and response.json()["run"] == 2
    assert time.monotonic() - started < 15  # bounded by the lock expiry, far below the 30 s leader wait


def test_an_expired_key_under_load_is_refreshed_once_and_nobody_waits(redis_server: Any, fleet: Any) -> None:
    instances = [fleet(f"redis:{redis_server.url}", 2) for _ in range(3)]
    urls = [i.url for i in instances]
    client = redis_client(redis_server)
    first = httpx.get(urls[0] + "/swr", headers=SAME_HOST)
    assert first.json() == {"run": 1}
    # once expired, the first request to see it answers STALE at once and starts the refresh,
    # which then blocks in the view (BLPOP) until the test lets it go
    wait_for(lambda: httpx.get(urls[1] + "/swr", headers=SAME_HOST).headers["x-cache"] == "STALE", 10, "expiry")
    wait_for(lambda: client.get("runs:swr") == b"2", 10, "the refresh to start")
    responses = asyncio.run(concurrent_gets(urls, "/swr", 60, SAME_HOST))  # all answered while it is blocked
    assert [r.status_code for r in responses] == [200] * 60
    assert all(r.json() == {"run": 1} and r.headers["x-cache"] == "STALE" for r in responses)
    assert client.get("runs:swr") == b"2"  # one refresh across the fleet
    client.rpush("go:swr", "1")
    wait_for(lambda: httpx.get(urls[2] + "/swr", headers=SAME_HOST).json() == {"run": 2}, 10, "the refreshed entry")
    assert client.get("runs:swr") == b"2"


def test_stale_if_error_serves_the_stale_entry_when_the_view_raises(redis_server: Any, fleet: Any) -> None:
    instances = [fleet(f"redis:{redis_server.url}", 2) for _ in range(3)]
    client = redis_client(redis_server)
    fresh = httpx.get(instances[0].url + "/sie", headers=SAME_HOST)
    assert fresh.status_code == 200 and fresh.json() == {"run": 1}
    client.set("fail:sie", "1")
    wait_for(lambda: httpx.get(instances[1].url + "/sie", headers=SAME_HOST).headers["x-cache"] != "HIT", 10, "expiry")
    for instance in instances:
        stale = httpx.get(instance.url + "/sie", headers=SAME_HOST)
        assert stale.status_code == 200 and stale.json() == {"run": 1}
        assert stale.headers["x-cache"] == "STALE" and int(stale.headers["age"]) >= 1
    assert any("the view raised RuntimeError" in i.output for i in instances)  # logged
    client.delete("fail:sie")
    recovered = httpx.get(instances[2].url + "/sie", headers=SAME_HOST)
    assert recovered.headers["x-cache"] == "MISS" and recovered.json()["run"] > 1


def test_invalidate_by_tag_reaches_every_instance(redis_server: Any, fleet: Any) -> None:
    instances = [fleet(f"redis:{redis_server.url}", 2) for _ in range(3)]
    hosts = [{"Host": f"site-{n}.example"} for n in range(3)]  # one entry per instance
    for instance, host in zip(instances, hosts):
        miss = httpx.get(instance.url + "/tagged/a", headers=host)
        assert miss.headers["x-cache"] == "MISS" and miss.headers["surrogate-key"] == "x item-a"
        hit = httpx.get(instance.url + "/tagged/a", headers=host)
        assert hit.headers["x-cache"] == "HIT" and hit.headers["surrogate-key"] == "x item-a"
    deleted = httpx.post(instances[0].url + "/invalidate").json()["deleted"]
    assert deleted == 3
    for instance, host in zip(instances, hosts):
        assert httpx.get(instance.url + "/tagged/a", headers=host).headers["x-cache"] == "MISS"


@pytest.mark.parametrize("operation", ["/delete", "/invalidate", "/clear"])
def test_simple_cache_delete_in_one_worker_reaches_all_four(tmp_path: Any, fleet: Any, operation: str) -> None:
    runs = tmp_path / "runs"
    instance = fleet("simple", 4, {"RUNS_FILE": str(runs), "VIEW_SECONDS": "0"})
    seen: dict[int, str] = {}  # worker pid -> its entry's body (SimpleCache: a hit comes from the worker's own memory)

    async def fill() -> None:
        for _ in range(50):
            for response in await concurrent_gets([instance.url], "/one", 16, SAME_HOST):
                seen[response.json()["pid"]] = response.text
            if len(seen) == 4:
                return

    asyncio.run(fill())
    assert len(seen) == 4, f"requests reached only {len(seen)} workers"
    deleted = httpx.post(instance.url + operation)
    assert deleted.status_code == 200
    started = time.monotonic()
    after: dict[int, str] = {}

    async def probe() -> None:
        for _ in range(50):
            for response in await concurrent_gets([instance.url], "/one", 16, SAME_HOST):
                pid = response.json()["pid"]
                if response.headers["x-cache"] == "MISS":
                    after.setdefault(pid, "MISS")
                elif pid not in after:
                    after[pid] = "HIT " + response.text
            if len(after) == 4:
                return

    asyncio.run(probe())
    elapsed = time.monotonic() - started
    print(f"delete reached all 4 workers; first answers after it: {sorted(after.values())} in {elapsed * 1000:.0f} ms")
    assert sorted(after.values()) == ["MISS"] * 4  # the first answer of every worker after the delete is a miss
    assert os.path.exists(runs)


def test_redis_frozen_mid_request_degrades_to_the_view(redis_server: Any, serve: Any, cache_log: Any) -> None:
    import signal

    from aeros import RedisCache, WebServer

    app = WebServer(__name__, cache=RedisCache(url=redis_server.url), disable_plugins=["hello"])
    calls: list[int] = []

    @app.route("/r")
    @app.cache(timeout=600)
    async def r() -> dict:
        calls.append(1)
        return {"n": len(calls)}

    server = serve(app)
    assert httpx.get(server.url + "/r").headers["x-cache"] == "MISS"
    assert httpx.get(server.url + "/r").headers["x-cache"] == "HIT"
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)  # frozen: connections open, nothing answered
    try:
        for _ in range(3):
            response = httpx.get(server.url + "/r", timeout=30)
            assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
        assert len(cache_log.messages("failed on reads")) == 1
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    wait_for(lambda: httpx.get(server.url + "/r", timeout=30).headers["x-cache"] == "HIT", 20, "the cache to come back")
    assert cache_log.messages("works again for reads")


def test_a_cancelled_leader_gives_its_lock_back_at_once(redis_server: Any, serve: Any) -> None:
    from aeros import RedisCache, WebServer

    backend = RedisCache(url=redis_server.url)
    backend.lock_timeout = 600  # only giving it back can free the key within this test
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])
    calls: list[int] = []

    @app.route("/hang")
    @app.cache(timeout=60)
    async def hang() -> str:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(3600)  # the first caller goes away long before this ends
        return "done"

    server = serve(app)
    client = redis_client(redis_server)
    with pytest.raises(httpx.TimeoutException):
        httpx.get(server.url + "/hang", timeout=1)  # disconnects: the request is cancelled
    wait_for(lambda: calls and not client.keys("aeros-cache:lock:*"), 10, "the lock to be given back")
    response = httpx.get(server.url + "/hang", timeout=30)
    assert response.status_code == 200 and response.text == "done" and len(calls) == 2


def test_a_failing_view_gives_its_lock_back_and_nothing_is_stored(redis_server: Any, serve: Any) -> None:
    from aeros import RedisCache, WebServer

    backend = RedisCache(url=redis_server.url)
    backend.lock_timeout = 600
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])

    @app.route("/boom")
    @app.cache(timeout=60)
    async def boom() -> str:
        raise RuntimeError("boom")

    server = serve(app)
    for _ in range(3):  # each one runs the view: the lock of the failed one is gone at once
        assert httpx.get(server.url + "/boom", timeout=30).status_code == 500
    wait_for(lambda: redis_client(redis_server).keys("aeros-cache:lock:*") == [], 10, "no lock left")


def test_an_answer_that_cannot_be_stored_does_not_serialise_the_fleet(redis_server: Any, fleet: Any) -> None:
    """A 500 is not stored: processes that waited for the lock holder then run the view
    themselves, together, rather than one after the other (6 workers x 2 s would be 12 s)."""
    instances = [fleet(f"redis:{redis_server.url}", 2, {"VIEW_SECONDS": "2"}) for _ in range(3)]
    started = time.monotonic()
    responses = asyncio.run(concurrent_gets([i.url for i in instances], "/slowfail", 12, SAME_HOST))
    elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [500] * 12
    assert elapsed < 9, f"{elapsed:.1f} s: the view runs were serialised"


def test_a_view_four_times_slower_than_the_lock_timeout_runs_once_across_instances(shared: Shared, fleet: Any) -> None:
    """The leader renews its lock while its view runs (every lock_timeout / 3): the other
    instance's leader waits for it instead of taking the lock once it would have expired."""
    env = {"LOCK_TIMEOUT": "0.5", "VIEW_SECONDS": "2", **shared.env}
    instances = [fleet(shared.spec, 1, env) for _ in range(2)]  # two processes, one worker each
    responses = asyncio.run(concurrent_gets([i.url for i in instances], "/one", 8, SAME_HOST))
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.content for r in responses}) == 1  # every request got the one answer
    assert shared.runs("one") == 1
    for instance in instances:
        assert "was lost" not in instance.output


def test_a_background_refresh_slower_than_the_lock_timeout_runs_once_across_instances(
    redis_server: Any, fleet: Any
) -> None:
    """stale-while-revalidate: the refresh holds the key's lock and renews it while its view
    runs, so the other instance, seeing the stale entry again and again, never refreshes too."""
    env = {"LOCK_TIMEOUT": "0.5"}
    first, second = (fleet(f"redis:{redis_server.url}", 1, env) for _ in range(2))
    client = redis_client(redis_server)
    assert httpx.get(first.url + "/swr", headers=SAME_HOST).json() == {"run": 1}
    wait_for(lambda: httpx.get(first.url + "/swr", headers=SAME_HOST).headers["x-cache"] == "STALE", 10, "expiry")
    wait_for(lambda: client.get("runs:swr") == b"2", 10, "the refresh to start")  # blocked in its view
    until = time.monotonic() + 2.0  # four lock timeouts
    while time.monotonic() < until:
        stale = httpx.get(second.url + "/swr", headers=SAME_HOST)  # each one tries to start a refresh
        assert stale.json() == {"run": 1} and stale.headers["x-cache"] == "STALE"
        time.sleep(0.05)
    assert client.get("runs:swr") == b"2"  # still the one refresh
    client.rpush("go:swr", "1")
    wait_for(lambda: httpx.get(second.url + "/swr", headers=SAME_HOST).json() == {"run": 2}, 10, "the refreshed entry")
    assert client.get("runs:swr") == b"2"
