"""Damaged entries (truncated, altered, hand-edited, garbage) are misses: deleted, logged once, never served.

The entries are damaged where they live: files of a FileSystemCache rewritten on disk, Redis
values overwritten with a real Redis client. Every request must get the view's own answer
(200, a body that matches its Content-Length), never a 5xx.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aeros_cache import entry as entry_format

from aeros import FileSystemCache, RedisCache, WebServer
from aeros_core.testing import installed_backends


def reencode(data: bytes, change: Callable[[dict], None]) -> bytes:
    """An entry with its JSON fields changed and a *valid* digest (what a careful hand-edit gives)."""
    size, length = struct.unpack_from(">IQ", data, 4)
    start = 4 + 12 + entry_format.DIGEST_SIZE
    meta = json.loads(data[start : start + size])
    change(meta)
    part = json.dumps(meta).encode()
    body = data[start + size :]
    digest = hashlib.sha256(part + body).digest()[: entry_format.DIGEST_SIZE]
    return data[:4] + struct.pack(">IQ", len(part), len(body)) + digest + part + body


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[:-10],
    "body-byte-changed": flip_last,
    "status-edited-in-place": lambda data: data.replace(b'"s":200', b'"s":99999'),
    "string-expiry-valid-digest": lambda data: reencode(data, lambda meta: meta.update(e="tomorrow")),
    "status-99999-valid-digest": lambda data: reencode(data, lambda meta: meta.update(s=99999)),
    "header-with-newline-valid-digest": lambda data: reencode(data, lambda m: m["h"].append(["X-A", "b\r\nc: d"])),
    "headers-not-a-list-valid-digest": lambda data: reencode(data, lambda meta: meta.update(h={"a": "b"})),
    "garbage": lambda data: b"\x00garbage\xff" * 3,
    "empty": lambda data: b"",
}


class FileStore:
    """The entry files of a FileSystemCache directory; the entry bytes follow a head and the key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.backend = FileSystemCache(directory)

    def names(self) -> list[Path]:
        return sorted(path for path in self.directory.glob("*.entry"))

    def damage(self, damage: Callable[[bytes], bytes]) -> None:
        (path,) = self.names()
        data = path.read_bytes()
        (size,) = struct.unpack_from(">I", data, 12)
        split = 16 + size
        path.write_bytes(data[:split] + damage(data[split:]))


class RedisStore:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.backend = RedisCache(url=url)

    def names(self) -> list[bytes]:
        return sorted(self.client.keys("aeros-cache:*"))

    def damage(self, damage: Callable[[bytes], bytes]) -> None:
        (name,) = self.names()
        self.client.set(name, damage(self.client.get(name)))


@pytest.fixture(params=["fs", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "fs":
        yield FileStore(tmp_path / "cache")
        return
    redis_server = request.getfixturevalue("redis_server")
    store = RedisStore(redis_server.url)
    yield store
    store.client.close()


def counting_app(backend: Any, edge: bool) -> tuple[WebServer, dict[str, int]]:
    app = WebServer(__name__, cache=backend, disable_plugins=["hello"])
    app.cache.edge = edge
    calls = {"n": 0}

    @app.route("/page")
    @app.cache(timeout=600)
    async def page() -> dict:
        calls["n"] += 1
        return {"n": calls["n"], "pad": "x" * 40}

    return app, calls


def check_whole(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["etag"] == '"' + hashlib.blake2b(response.content, digest_size=16).hexdigest() + '"'


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
@pytest.mark.parametrize("edge", [True, False], ids=["edge", "quart"])
def test_a_damaged_entry_is_a_miss_deleted_and_logged_once(
    store: Any, serve: Any, cache_log: Any, damage: str, edge: bool
) -> None:
    app, calls = counting_app(store.backend, edge)
    server = serve(app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.get("/page")
        assert first.headers["x-cache"] == "MISS"
        assert client.get("/page").headers["x-cache"] == "HIT"  # the edge index knows /page now
        store.damage(DAMAGES[damage])
        after = client.get("/page")
        check_whole(after)
        assert after.headers["x-cache"] == "MISS" and after.json()["n"] == 2
        again = client.get("/page")  # the view's new answer replaced the damaged entry
        check_whole(again)
        assert again.headers["x-cache"] == "HIT" and again.json() == after.json()
    assert calls["n"] == 2
    assert len(cache_log.messages("is damaged")) == 1
    assert len(store.names()) == 1


@pytest.mark.parametrize("backend", installed_backends())
def test_damaged_files_never_give_a_5xx_on_any_server(tmp_path: Path, serve: Any, backend: str) -> None:
    store = FileStore(tmp_path / "cache")
    app, calls = counting_app(store.backend, edge=True)
    server = serve(app, server=backend)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for name, damage in DAMAGES.items():
            client.get("/page")
            if not store.names():
                client.get("/page")
            store.damage(damage)
            response = client.get("/page")
            check_whole(response)
            assert response.headers["x-cache"] == "MISS", name
