"""The lean HTTP connection keeps Quart's behaviour: bodies, streaming, disconnects, errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
from quart.asgi import ASGIHTTPConnection

from aeros import WebServer
from aeros_core.asgi import LEAN_AVAILABLE, LeanHTTPConnection
from aeros_core.testing import installed_backends


def make_app(connection_class: type) -> tuple[WebServer, dict]:
    # WebServer reads the connection class from its class (an instance attribute is not used)
    server_class = type("Server", (WebServer,), {"asgi_http_class": connection_class})
    app = server_class(__name__)
    seen: dict = {"finished": False, "started": threading.Event()}

    @app.route("/upload", methods=["POST"])
    async def upload():
        from quart import request

        total = 0
        async for chunk in request.body:
            total += len(chunk)
        return {"received": total}

    @app.route("/stream")
    async def stream():
        async def chunks():
            for number in range(3):
                yield f"chunk {number}\n"

        return chunks()

    @app.route("/hang")
    async def hang():
        seen["started"].set()
        try:
            await asyncio.sleep(30)
            seen["finished"] = True
        except asyncio.CancelledError:
            seen["cancelled_at"] = time.monotonic()
            raise
        return "never"

    @app.route("/text")
    async def text():
        return "0123456789" * 100

    @app.route("/ranged")
    async def ranged():
        from quart import request

        data = b"abcdefghijklmnopqrstuvwxyz" * 40
        response = await app.make_response(data)
        await response.make_conditional(request, accept_ranges=True, complete_length=len(data))
        return response

    return app, seen


CLASSES = [pytest.param(ASGIHTTPConnection, id="quart"), pytest.param(LeanHTTPConnection, id="lean")]


def test_aeros_uses_the_lean_connection_where_it_can():
    assert WebServer.asgi_http_class is (LeanHTTPConnection if LEAN_AVAILABLE else ASGIHTTPConnection)


@pytest.mark.parametrize("backend", installed_backends())
@pytest.mark.parametrize("connection_class", CLASSES)
def test_streamed_upload_and_streamed_response(serve, connection_class, backend):
    app, _ = make_app(connection_class)
    server = serve(app, server=backend)

    def body():
        for _ in range(50):
            yield b"x" * 10000

    assert httpx.post(server.url + "/upload", content=body(), timeout=10).json() == {"received": 500000}
    assert httpx.get(server.url + "/stream").text == "chunk 0\nchunk 1\nchunk 2\n"


@pytest.mark.parametrize("backend", installed_backends())
@pytest.mark.parametrize("connection_class", CLASSES)
def test_a_client_that_goes_away_cancels_the_view(serve, connection_class, backend):
    app, seen = make_app(connection_class)
    server = serve(app, server=backend)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /hang HTTP/1.1\r\nHost: test\r\n\r\n")
        assert seen["started"].wait(10), "the view never started"
    closed_at = time.monotonic()
    deadline = closed_at + 10
    while "cancelled_at" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "cancelled_at" in seen, "the view kept running after the client left"
    assert seen["finished"] is False
    assert httpx.get(server.url + "/stream").status_code == 200  # and the server serves on


def raw_response(port: int, request: bytes) -> bytes:
    """Everything the server sends for one request that closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:"))


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET /text HTTP/1.1", id="text"),
        pytest.param(b"HEAD /text HTTP/1.1", id="head"),
        pytest.param(b"GET /ranged HTTP/1.1\r\nRange: bytes=5-30", id="range"),
        pytest.param(b"GET /ranged HTTP/1.1\r\nRange: bytes=-7", id="suffix-range"),
        pytest.param(b"GET /ranged HTTP/1.1\r\nRange: bytes=5000-6000", id="unsatisfiable"),
        pytest.param(b"GET /missing HTTP/1.1", id="404"),
    ],
)
def test_in_memory_bodies_are_sent_as_quart_sends_them(serve, request_head):
    """The lean connection sends a body held in memory in one message: same bytes on the wire."""
    answers = []
    for connection_class in (ASGIHTTPConnection, LeanHTTPConnection):
        app, _ = make_app(connection_class)
        server = serve(app, server="hypercorn", request_id_header=None)  # ids differ per request
        request = request_head + b"\r\nHost: test\r\nConnection: close\r\n\r\n"
        answers.append(without_date(raw_response(server.port, request)))
    quart_answer, lean_answer = answers
    assert quart_answer.startswith(b"HTTP/1.1 "), quart_answer
    if b"Range: bytes=5-30" in request_head:
        assert quart_answer.startswith(b"HTTP/1.1 206"), quart_answer
    assert lean_answer == quart_answer
