"""Fixtures of the aeros-compress tests: an HTTP client that sends only the Accept-Encoding a
test gives, and decoders for every content coding (independent of the plugin's own code)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

#: a JSON document well above every min_size, like the benchmark's 60 KB one but smaller
DOC = json.dumps(
    {"items": [{"id": i, "name": f"item {i}", "tags": ["alpha", "beta", "gamma"][: i % 3 + 1]} for i in range(400)]}
).encode()


def decode(encoding: str | None, data: bytes) -> bytes:
    """The body decoded with the reference library of ``encoding`` (``None``: as is)."""
    if encoding in (None, "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "br":
        import brotli

        return brotli.decompress(data)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise AssertionError(f"unexpected Content-Encoding {encoding!r}")


def decompressor(encoding: str) -> Callable[[bytes], bytes]:
    """An incremental decoder: call it with each received piece, get what it decodes to so far."""
    if encoding == "gzip":
        import zlib

        return zlib.decompressobj(31).decompress
    if encoding == "br":
        import brotli

        return brotli.Decompressor().process
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress
    raise AssertionError(encoding)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An httpx client that sends no Accept-Encoding unless the test sets one, and never decodes
    for us: tests read ``response.content`` raw through :func:`raw`."""
    with httpx.Client(timeout=10) as client:
        del client.headers["accept-encoding"]
        yield client


def get(
    client: httpx.Client, url: str, accept: str | None = None, method: str = "GET", **headers: str
) -> tuple[httpx.Response, bytes]:
    """Fetch ``url`` with this Accept-Encoding; return the response and its raw (undecoded) body."""
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    if accept is not None:
        sent["Accept-Encoding"] = accept
    with client.stream(method, url, headers=sent) as response:
        body = b"".join(response.iter_raw())
    return response, body


@pytest.fixture
def fetch(client: httpx.Client) -> Callable[..., tuple[httpx.Response, bytes]]:
    """``fetch(url, accept=None, method="GET", **headers)`` -> (response, raw body)."""

    def run(url: str, accept: str | None = None, method: str = "GET", **headers: Any) -> tuple[httpx.Response, bytes]:
        return get(client, url, accept, method, **headers)

    return run


@pytest.fixture(name="decode")
def decode_fixture() -> Callable[[str | None, bytes], bytes]:
    """:func:`decode`: ``decode(response.headers.get("content-encoding"), raw_body)``."""
    return decode


@pytest.fixture(name="decompressor")
def decompressor_fixture() -> Callable[[str], Callable[[bytes], bytes]]:
    """:func:`decompressor`: an incremental decoder for one encoding."""
    return decompressor


@pytest.fixture
def doc() -> bytes:
    """A JSON document of about 25 KB."""
    return DOC
