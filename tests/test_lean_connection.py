"""The lean HTTP connection keeps Quart's behaviour: bodies, streaming, disconnects, errors."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from quart.asgi import ASGIHTTPConnection

from aeros import WebServer
from aeros_core.asgi import LEAN_AVAILABLE, LeanHTTPConnection


def make_app(connection_class: type) -> tuple[WebServer, dict]:
    app = WebServer(__name__)
    app.asgi_http_class = connection_class
    seen: dict = {"finished": False}

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
        try:
            await asyncio.sleep(30)
            seen["finished"] = True
        except asyncio.CancelledError:
            seen["cancelled_at"] = time.monotonic()
            raise
        return "never"

    return app, seen


CLASSES = [pytest.param(ASGIHTTPConnection, id="quart"), pytest.param(LeanHTTPConnection, id="lean")]


def test_aeros_uses_the_lean_connection_where_it_can():
    assert WebServer.asgi_http_class is (LeanHTTPConnection if LEAN_AVAILABLE else ASGIHTTPConnection)


@pytest.mark.parametrize("connection_class", CLASSES)
def test_streamed_upload_and_streamed_response(serve, connection_class):
    app, _ = make_app(connection_class)
    server = serve(app)

    def body():
        for _ in range(50):
            yield b"x" * 10000

    assert httpx.post(server.url + "/upload", content=body(), timeout=10).json() == {"received": 500000}
    assert httpx.get(server.url + "/stream").text == "chunk 0\nchunk 1\nchunk 2\n"


@pytest.mark.parametrize("connection_class", CLASSES)
def test_a_client_that_goes_away_cancels_the_view(serve, connection_class):
    app, seen = make_app(connection_class)
    server = serve(app)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /hang HTTP/1.1\r\nHost: test\r\n\r\n")
        time.sleep(0.3)
    closed_at = time.monotonic()
    deadline = closed_at + 10
    while "cancelled_at" not in seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "cancelled_at" in seen, "the view kept running after the client left"
    assert seen["finished"] is False
    assert httpx.get(server.url + "/stream").status_code == 200  # and the server serves on
