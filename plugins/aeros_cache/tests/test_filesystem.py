"""FileSystemCache: shared by real processes, atomic writes, bounded, and survives a broken directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from aeros_cache.entry import Entry

from aeros import FileSystemCache, WebServer

# the key holds the Host: behind one load balancer, every process sees the same one
SAME_HOST = {"Host": "app.example"}


def test_shared_by_two_processes(tmp_path: Path, app_process: Any) -> None:
    directory = tmp_path / "cache"
    first = app_process(f"fs:{directory}")
    second = app_process(f"fs:{directory}")
    miss = httpx.get(first.url + "/pid", headers=SAME_HOST, timeout=10)
    assert miss.headers["x-cache"] == "MISS"
    hit = httpx.get(second.url + "/pid", headers=SAME_HOST, timeout=10)
    assert hit.headers["x-cache"] == "HIT"
    assert hit.json() == miss.json()  # the second process served the first one's answer
    assert hit.json()["pid"] == first.process.pid != second.process.pid
    assert not [name for name in os.listdir(directory) if name.startswith(".tmp-")]


def test_readers_never_see_half_an_entry(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path / "atomic")
    bodies = [bytes([n]) * 2_000_000 for n in range(1, 4)]
    seen: list[Any] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            entry = cache._get("k")
            seen.append(None if entry is None else entry.body)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(15):
            cache._set("k", Entry(body=bodies[round_ % 3]), None)
    finally:
        stop.set()
        thread.join(10)
    assert any(body is not None for body in seen)
    assert all(body is None or body in bodies for body in seen)


def test_threshold_bounds_the_number_of_files(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path / "bounded", threshold=20)

    async def fill() -> None:
        for n in range(200):
            await cache.set(f"key{n}", Entry(body=b"x"), 60)

    asyncio.run(fill())
    assert len(list((tmp_path / "bounded").iterdir())) <= 20 + 32


def test_expired_entries_are_gone(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path / "expiring")

    async def scenario() -> tuple[Any, Any]:
        await cache.set("short", Entry(body=b"x"), 0.1)
        await cache.set("long", Entry(body=b"y"), 60)
        await asyncio.sleep(0.2)
        return await cache.get("short"), await cache.get("long")

    short, long = asyncio.run(scenario())
    assert short is None and long is not None and long.body == b"y"


def test_broken_directory_answers_normally_and_recovers(tmp_path: Path, serve: Any, cache_log: Any) -> None:
    directory = tmp_path / "cache"
    app = WebServer(__name__, cache=FileSystemCache(directory), disable_plugins=["hello"])
    calls = []

    @app.route("/f")
    @app.cache(timeout=60)
    async def f() -> str:
        calls.append(1)
        return "file"

    server = serve(app)
    assert httpx.get(server.url + "/f").headers["x-cache"] == "MISS"
    assert httpx.get(server.url + "/f").headers["x-cache"] == "HIT"
    shutil.rmtree(directory)
    directory.write_text("not a directory")  # every read and write now fails
    for _ in range(5):
        response = httpx.get(server.url + "/f")
        assert response.status_code == 200 and response.text == "file"
    # one message per kind of operation that went from working to failing, whatever the number of requests
    assert len(cache_log.messages("failed on reads")) == 1
    assert len(cache_log.messages("failed on writes")) <= 1
    directory.unlink()
    deadline = time.monotonic() + 10
    states = []
    while time.monotonic() < deadline:
        states.append(httpx.get(server.url + "/f").headers["x-cache"])
        if states[-1] == "HIT":
            break
        time.sleep(0.2)
    assert states[-1] == "HIT"  # stored again once the directory came back, without a restart


def test_delete_by_view_in_the_directory(tmp_path: Path, serve: Any) -> None:
    app = WebServer(__name__, cache=FileSystemCache(tmp_path / "c"), disable_plugins=["hello"])

    @app.route("/one")
    @app.cache(timeout=60)
    async def one() -> str:
        return "1"

    @app.route("/two")
    @app.cache(timeout=60)
    async def two() -> str:
        return "2"

    server = serve(app)
    for path in ("/one", "/one?x=1", "/two"):
        httpx.get(server.url + path)
    assert asyncio.run(app.cache.delete(one)) == 2
    assert httpx.get(server.url + "/one").headers["x-cache"] == "MISS"
    assert httpx.get(server.url + "/two").headers["x-cache"] == "HIT"
