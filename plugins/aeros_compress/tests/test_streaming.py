"""Streaming responses: compressed chunk by chunk and flushed, so each event decodes on arrival."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from quart import Response

from aeros import AsgiWrapper, Br, Gzip, Stage, WebServer, Zstd, hookimpl

EVENT_1 = b'event: tick\ndata: {"n": 1, "text": "first event"}\n\n'
EVENT_2 = b'event: tick\ndata: {"n": 2, "text": "second event"}\n\n'


def make_app(compression: Any) -> WebServer:
    app = WebServer(__name__, compression=compression, disable_plugins=["hello"])
    gates: dict[str, asyncio.Event] = {}

    def gate() -> asyncio.Event:
        return gates.setdefault("gate", asyncio.Event())  # made in the server's loop

    @app.route("/events")
    async def events() -> Any:
        async def stream() -> AsyncIterator[bytes]:
            yield EVENT_1
            await asyncio.wait_for(gate().wait(), 10)  # the test releases it after reading event 1
            yield EVENT_2

        return stream(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

    @app.route("/release")
    async def release() -> str:
        gate().set()
        return "released"

    @app.route("/tiny-stream")
    async def tiny_stream() -> Any:
        async def stream() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return stream(), 200, {"Content-Type": "text/plain"}

    @app.route("/big-stream")
    async def big_stream() -> Any:
        async def stream() -> AsyncIterator[bytes]:
            for i in range(3):
                yield (b"line %d of a big streamed text body\n" % i) * 6000

        return stream(), 200, {"Content-Type": "text/plain"}

    @app.route("/sized-stream")
    async def sized_stream() -> Response:
        parts = [b'{"part": %d}\n' % i * 200 for i in range(5)]

        async def stream() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        return Response(
            stream(), content_type="application/x-ndjson", headers={"Content-Length": str(sum(map(len, parts)))}
        )

    @app.route("/huge")
    async def huge() -> Response:
        return Response(b"0123456789abcdef" * (9 * 65536), content_type="text/plain")  # 9 MiB

    return app


@pytest.mark.parametrize("backend", ["hypercorn", "uvicorn"])
@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_first_event_decodes_before_the_stream_ends(serve: Any, decompressor: Any, encoding: str, backend: str) -> None:
    if backend != "hypercorn":
        pytest.importorskip(f"aeros_{backend}")
    server = serve(make_app([Br(), Gzip(), Zstd()]), server=backend)
    with httpx.Client(timeout=5) as client, httpx.Client(timeout=5) as other:
        with client.stream("GET", server.url + "/events", headers={"Accept-Encoding": encoding}) as response:
            assert response.status_code == 200
            assert response.headers["content-encoding"] == encoding
            assert response.headers["vary"] == "Accept-Encoding"
            assert "content-length" not in response.headers
            decode = decompressor(encoding)
            decoded = b""
            chunks = response.iter_raw()
            for chunk in chunks:  # bounded: the server ends the stream within 10 s whatever happens
                decoded += decode(chunk)
                if len(decoded) >= len(EVENT_1):
                    break
            assert decoded == EVENT_1  # whole and decodable while the server still holds event 2
            assert other.get(server.url + "/release").text == "released"
            for chunk in chunks:
                decoded += decode(chunk)
    assert decoded == EVENT_1 + EVENT_2


def test_streams_are_compressed_whatever_their_size(serve: Any, fetch: Any, decode: Any) -> None:
    server = serve(make_app(Gzip()))
    response, body = fetch(server.url + "/tiny-stream", "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == b"ab"


@pytest.mark.parametrize("algorithm", [Gzip(level=9, backend="zlib"), Br(level=5), Zstd(level=10)], ids=repr)
def test_big_chunks_off_the_loop(serve: Any, fetch: Any, decode: Any, algorithm: Any) -> None:
    # chunks of 220 KB are above these algorithms' offload thresholds: compressed in threads
    assert algorithm.offload_threshold < 220_000
    server = serve(make_app(algorithm))
    response, body = fetch(server.url + "/big-stream", algorithm.encoding)
    assert response.headers["content-encoding"] == algorithm.encoding
    expected = b"".join((b"line %d of a big streamed text body\n" % i) * 6000 for i in range(3))
    assert decode(algorithm.encoding, body) == expected


def test_known_length_sent_in_chunks_is_compressed_once(serve: Any, fetch: Any, decode: Any) -> None:
    server = serve(make_app(Gzip()))
    response, body = fetch(server.url + "/sized-stream", "gzip")
    expected = b"".join(b'{"part": %d}\n' % i * 200 for i in range(5))
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(body))
    assert decode("gzip", body) == expected


def test_bodies_over_the_buffer_limit_are_streamed(serve: Any, fetch: Any, decode: Any) -> None:
    server = serve(make_app(Zstd()))
    response, body = fetch(server.url + "/huge", "zstd")
    assert response.headers["content-encoding"] == "zstd"
    assert "content-length" not in response.headers  # chunked: never held whole in memory
    assert decode("zstd", body) == b"0123456789abcdef" * (9 * 65536)


class RawAnswers:
    """A plugin answering some paths itself at the ASGI edge (inside compression), as aeros-cache does."""

    @staticmethod
    def wrap(inner: Any) -> Any:
        async def raw(scope: dict, receive: Any, send: Any) -> None:
            path = scope.get("path")
            if path == "/raw-one-message":  # no Content-Length, the whole body in one message
                headers = ((name, value) for name, value in [(b"content-type", b"text/plain")])  # an iterable
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": b"raw body " * 100})
            elif path == "/raw-unfinished":  # ends without the final body message
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"900")],
                    }
                )
                await send({"type": "http.response.body", "body": b"raw body " * 100, "more_body": True})
            else:
                await inner(scope, receive, send)

        return raw

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper:
        return AsgiWrapper(Stage.STORE, self.wrap)


def test_raw_asgi_answers_are_compressed(serve: Any, fetch: Any, decode: Any) -> None:
    app = WebServer(__name__, compression=Gzip(), disable_plugins=["hello"], plugins=[RawAnswers()])
    server = serve(app)
    response, body = fetch(server.url + "/raw-one-message", "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert decode("gzip", body) == b"raw body " * 100
    response, body = fetch(server.url + "/raw-unfinished", "gzip")
    assert "content-encoding" not in response.headers  # handed on as it was, not lost
    assert body == b"raw body " * 100
