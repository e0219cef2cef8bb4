"""Memory a client can make the cache hold is bounded in bytes, measured on a real server process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PATHS = 12_000
PATH_BYTES = 15_000  # with the request line and headers, under the 16 KB head limit


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _read_responses(sock: socket.socket, count: int) -> list[int]:
    """Statuses of the next ``count`` HTTP/1.1 responses (each with a Content-Length)."""
    buffer, statuses = b"", []
    while len(statuses) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffer[:head_end].decode("latin-1").lower()
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            if len(buffer) >= head_end + 4 + length:
                statuses.append(int(head.split(" ", 2)[1]))
                buffer = buffer[head_end + 4 + length :]
                continue
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        buffer += chunk
    return statuses


def hammer(port: int, start: int, stop: int, connections: int = 4) -> None:
    """GET /item/<distinct 15 KB name> for every n in [start, stop): keep-alive connections,
    one request at a time on each; a raw socket, so the client costs little and the server does the work."""
    errors: list[BaseException] = []

    def run(offset: int) -> None:
        try:
            numbers = list(range(start + offset, stop, connections))
            # a new connection every 500 requests (servers cap requests per connection: Hypercorn at 1000)
            for chunk in range(0, len(numbers), 500):
                with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                    for n in numbers[chunk : chunk + 500]:
                        name = f"{n:08d}".ljust(PATH_BYTES - len("/item/"), "x")
                        sock.sendall(b"GET /item/" + name.encode() + b" HTTP/1.1\r\nHost: app.example\r\n\r\n")
                        assert _read_responses(sock, 1) == [200]
        except BaseException as error:  # reported in the test's thread
            errors.append(error)

    workers = [threading.Thread(target=run, args=(offset,)) for offset in range(connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    assert not errors, errors[0]


@pytest.mark.serial  # 12,000 requests of 15 KB: alone on the machine (its RSS, its time)
@pytest.mark.timeout(900)
def test_twelve_thousand_distinct_long_paths_add_at_most_64_mb() -> None:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "serve_paths.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://")
        port = int(url.rsplit(":", 1)[1])
        hammer(port, 0, 400)  # warm up: imports, buffers, first allocations
        before = rss_mb(process.pid)
        hammer(port, 400, 400 + PATHS)
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

    from aeros_cache.entry import Entry

    from aeros import SimpleCache

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
