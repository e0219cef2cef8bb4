"""Memory a client can make the cache hold is bounded in bytes, measured on a real server process."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx

HERE = Path(__file__).parent
PATHS = 12_000
PATH_BYTES = 15_000  # with the request line and headers, under the 16 KB head limit


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def hammer(url: str, start: int, stop: int, threads: int = 4) -> None:
    errors: list[BaseException] = []

    def run(offset: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                for n in range(start + offset, stop, threads):
                    name = f"{n:08d}".ljust(PATH_BYTES - len("/item/"), "x")
                    response = client.get("/item/" + name)
                    assert response.status_code == 200 and response.json() == {"length": len(name)}
        except BaseException as error:  # reported in the test's thread
            errors.append(error)

    workers = [threading.Thread(target=run, args=(offset,)) for offset in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    assert not errors, errors[0]


def test_twelve_thousand_distinct_long_paths_add_at_most_64_mb() -> None:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "serve_paths.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://")
        hammer(url, 0, 400)  # warm up: imports, buffers, first allocations
        before = rss_mb(process.pid)
        hammer(url, 400, 400 + PATHS)
        after = rss_mb(process.pid)
        print(f"RSS {before:.1f} MB -> {after:.1f} MB (+{after - before:.1f} MB) for {PATHS} paths of {PATH_BYTES} B")
        assert after - before <= 64
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)


def test_the_edge_index_stays_within_its_bytes() -> None:
    from aeros_cache.index import EdgeIndex

    index = EdgeIndex(max_bytes=1 << 20, max_path=2048)
    for n in range(20_000):
        index.add("GET", f"/p/{n:06d}".ljust(2000, "x"), object())
        assert index.bytes <= index.max_bytes
    assert 100 < len(index) < 1000
    assert ("GET", "/p/019999".ljust(2000, "x")) in index.data  # the newest stay
    index.add("GET", "/" + "y" * 5000, object())  # too long to be indexed: served through Quart
    assert ("GET", "/" + "y" * 5000) not in index.data
    assert index.bytes == sum(EdgeIndex.cost(path) for _, path in index.data)


def test_simple_cache_stays_within_its_bytes() -> None:
    import asyncio

    from aeros import SimpleCache
    from aeros_cache.entry import Entry

    cache = SimpleCache(threshold=100_000, max_bytes=4 << 20)

    async def fill() -> None:
        for n in range(3000):
            await cache.set(f"key-{n}", Entry(body=b"b" * 10_000, headers=[("Content-Type", "text/plain")]), None)
            assert cache.bytes <= cache.max_bytes
        await cache.set("huge", Entry(body=b"h" * (1 << 20)), None)  # over max_bytes / 8: not stored

    asyncio.run(fill())
    assert 300 < len(cache) < 420
    assert cache.get_now("key-2999") is not None and cache.get_now("key-0") is None
    assert cache.get_now("huge") is None
    assert cache.bytes == sum(SimpleCache.size_of(key, item[1]) for key, item in cache._data.items())
