"""Renewal of the fleet lock while its view runs: started with the lock, stopped wherever the lock
is given back or the request ends, logged once when it fails. (Cross-process single flight with a
view slower than ``lock_timeout``: ``test_fleet.py``.)"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from aeros import FileSystemCache, RedisCache, WebServer


def wait_for(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lock_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.lock"))


@pytest.mark.parametrize("path", ["stored", "failed", "cancelled", "fast"])
def test_no_renewal_is_left_behind(tmp_path: Path, serve: Any, cache_log: Any, path: str) -> None:
    """The view runs until its lock has a renewal task (lock_timeout 0.3 s: one every 0.1 s),
    then answers, raises, or its client goes away; afterwards no renewal task is left and the
    lock is gone. ``fast``: a view done before the first renewal is due never starts one, and
    its timer is stopped (a timer left behind would start a renewal that finds the lock gone)."""
    backend = FileSystemCache(tmp_path)
    backend.lock_timeout = 0.3
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])
    locks = app.cache._plugin.locks
    renewing_seen = threading.Event()
    cancelled = threading.Event()

    @app.route("/v")
    @app.cache(timeout=60)
    async def view() -> str:
        if path != "fast":
            deadline = time.monotonic() + 5
            while not locks.renewing and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if locks.renewing:
                renewing_seen.set()
        if path == "failed":
            raise RuntimeError("the view broke")
        if path == "cancelled":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return "ok"

    server = serve(app)
    if path == "cancelled":
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(b"GET /v HTTP/1.1\r\nHost: app.example\r\n\r\n")
            assert renewing_seen.wait(10)
        assert cancelled.wait(10), "the disconnect did not cancel the request"
    else:
        response = httpx.get(server.url + "/v", timeout=30)
        assert response.status_code == (500 if path == "failed" else 200)
        assert path == "fast" or renewing_seen.is_set()
    wait_for(lambda: not locks.renewing and not lock_files(tmp_path), 10, "renewals and locks to be gone")
    time.sleep(0.4)  # more than a renewal interval: nothing starts again
    assert not locks.renewing and not lock_files(tmp_path)
    assert not cache_log.messages("was lost") and not cache_log.messages("failed on")


def test_a_lost_lock_is_logged_once_and_the_request_still_answers(
    redis_server: Any, serve: Any, cache_log: Any
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    backend = RedisCache(url=redis_server.url)
    backend.lock_timeout = 0.5
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])
    locks = app.cache._plugin.locks
    runs: list[int] = []

    @app.route("/slow/<int:n>")
    @app.cache(timeout=60)
    async def slow(n: int) -> dict:
        runs.append(n)
        names = await asyncio.to_thread(client.keys, "aeros-cache:lock:*")
        assert len(names) == 1
        await asyncio.to_thread(client.delete, *names)  # the lock is lost while the view runs
        await asyncio.sleep(1.0)  # several renewal intervals: the first one finds it gone
        return {"n": n}

    server = serve(app)
    for n in (1, 2):  # two lost locks: one warning
        response = httpx.get(server.url + f"/slow/{n}", timeout=30)
        assert response.status_code == 200 and response.json() == {"n": n}
        assert response.headers["x-cache"] == "MISS"
    assert runs == [1, 2]
    assert len(cache_log.messages("was lost while its view ran")) == 1
    assert not cache_log.messages("failed on")  # a lost lock is no backend failure: stores go on
    assert httpx.get(server.url + "/slow/1", timeout=30).headers["x-cache"] == "HIT"
    wait_for(lambda: not locks.renewing, 10, "the renewals to stop")
    assert client.keys("aeros-cache:lock:*") == []


def test_a_failing_extension_is_logged_once_and_the_request_still_answers(
    tmp_path: Path, serve: Any, cache_log: Any
) -> None:
    backend = FileSystemCache(tmp_path)
    backend.lock_timeout = 0.3
    tries: list[str] = []

    async def broken_extend(key: str, token: str) -> bool:
        tries.append(key)
        raise OSError("disk gone")

    backend.extend = broken_extend  # type: ignore[method-assign]
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])
    locks = app.cache._plugin.locks

    @app.route("/slow")
    @app.cache(timeout=60)
    async def slow() -> str:
        await asyncio.sleep(0.5)  # five renewal intervals: one try, then no more
        return "done"

    server = serve(app)
    response = httpx.get(server.url + "/slow", timeout=30)
    assert response.status_code == 200 and response.text == "done"
    assert len(tries) == 1
    assert len(cache_log.messages("failed on writes (renew): OSError: disk gone")) == 1
    wait_for(lambda: not locks.renewing and not lock_files(tmp_path), 10, "renewals and locks to be gone")


def test_filesystem_extend_is_a_compare_and_extend(tmp_path: Path) -> None:
    backend = FileSystemCache(tmp_path)
    backend.lock_timeout = 5
    token = backend._acquire("k")
    assert token is not None
    path = Path(backend._lock_path("k"))
    _, first = backend._lock_holder(str(path))  # type: ignore[misc]
    backend.lock_timeout = 50
    assert backend._extend("k", token)
    holder, later = backend._lock_holder(str(path))  # type: ignore[misc]
    assert holder == token and later > first + 40
    assert not backend._extend("k", "not-the-token")
    assert backend._lock_holder(str(path)) == (token, later)
    backend._release("k", token)
    assert not backend._extend("k", token)  # released: nothing to extend, nothing created
    assert not path.exists()


def test_filesystem_extend_never_touches_a_lock_broken_and_taken_by_another(tmp_path: Path) -> None:
    """The holder's renewal opened its file; meanwhile another process broke the (expired) lock
    and took it: the write goes to the unlinked file, and the renewal reports the lock lost."""
    backend = FileSystemCache(tmp_path)
    token = backend._acquire("k")
    assert token is not None
    path = backend._lock_path("k")
    real_open = os.open
    other: list[str | None] = []

    def open_then_lose(name: str, flags: int, *args: Any) -> int:
        fd = real_open(name, flags, *args)
        if name == path and flags == os.O_RDWR:  # the renewal's open
            os.remove(path)  # broken as expired by another process...
            other.append(backend._acquire("k"))  # ...which now holds it
        return fd

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", open_then_lose)
        assert not backend._extend("k", token)
    assert other[0] is not None and backend._lock_holder(path)[0] == other[0]  # type: ignore[index]


async def test_redis_extend_is_a_compare_and_extend(redis_server: Any) -> None:
    backend = RedisCache(url=redis_server.url)
    backend.lock_timeout = 5
    try:
        token = await backend.acquire("k")
        assert token is not None
        client = backend._client()
        name = backend._lock_name("k")
        assert 0 < await client.pttl(name) <= 5000
        backend.lock_timeout = 50
        assert await backend.extend("k", token)
        assert 45000 < await client.pttl(name) <= 50000
        assert not await backend.extend("k", "not-the-token")
        assert await client.get(name) == token.encode()
        await backend.release("k", token)
        assert not await backend.extend("k", token)
        assert await client.exists(name) == 0
    finally:
        await backend.shutdown()


def test_redis_frozen_while_the_lock_is_renewed_is_logged_once_and_the_request_still_answers(
    redis_server: Any, serve: Any, cache_log: Any
) -> None:
    """The real failure behind the one above: the Redis process stops answering (SIGSTOP) while a
    view holds the lock; the renewal times out, is logged once and stops; the view's answer goes out."""
    import signal

    import redis

    client = redis.Redis.from_url(redis_server.url)
    backend = RedisCache(url=redis_server.url, socket_timeout=0.3)
    backend.lock_timeout = 0.6  # a renewal every 0.2 s
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])
    locks = app.cache._plugin.locks
    assert redis_server.process is not None

    @app.route("/slow")
    @app.cache(timeout=60)
    async def slow() -> str:
        redis_server.process.send_signal(signal.SIGSTOP)  # frozen: connections open, nothing answered
        try:
            await asyncio.sleep(1.5)  # the first renewal (at 0.2 s) times out at ~0.5 s
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        return "done"

    server = serve(app)
    try:
        response = httpx.get(server.url + "/slow", timeout=30)
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert response.status_code == 200 and response.text == "done"
    assert len(cache_log.messages("(renew)")) == 1
    wait_for(lambda: not locks.renewing, 10, "the renewal to stop")
    wait_for(lambda: client.keys("aeros-cache:lock:*") == [], 10, "the lock to be given back or expire")
