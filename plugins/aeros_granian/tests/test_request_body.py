"""Request bodies on granian: a request without a body by its HTTP/1.x framing gets its empty body
at the app's first ``receive`` without waiting on granian (no task, no loop turn), and the app
still sees every body that is sent, and the client going away, exactly once."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest
from quart import request

from aeros import WebServer
from aeros_core.asgi import _resume
from aeros_core.hookspecs import hookimpl
from aeros_core.pipeline import AsgiWrapper, Stage


class ReceiveRecorder:
    """A raw ASGI answer at ``/raw``: records whether the first ``receive`` answered on its first
    step, and the messages of the first two receives (the second waits for the client to go)."""

    def __init__(self) -> None:
        self.first_at_once: bool | None = None
        self.messages: list[dict[str, Any]] = []
        self.first_received = threading.Event()
        self.done = threading.Event()

    def wrap(self, inner: Any) -> Any:
        async def raw(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] != "/raw":
                return await inner(scope, receive, send)
            try:
                steps = receive().__await__()
                try:
                    waiting_on = next(steps)
                except StopIteration as stop:
                    self.first_at_once = True
                    self.messages.append(stop.value)
                else:  # it waits on granian: go on awaiting it
                    self.first_at_once = False
                    self.messages.append(await _resume(steps, waiting_on))
                self.first_received.set()
                self.messages.append(await receive())  # the client goes away meanwhile
            finally:
                self.done.set()

        return raw

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper:
        return AsgiWrapper(Stage.STORE, self.wrap)


def echo_app(recorder: ReceiveRecorder | None = None) -> WebServer:
    app = WebServer(__name__, disable_plugins=["hello"], plugins=[recorder] if recorder else [])

    @app.route("/echo", methods=["GET", "POST"])
    async def echo() -> bytes:
        return b"[" + await request.get_data() + b"]"

    return app


def test_a_bodiless_request_gets_its_empty_body_at_once_and_then_the_disconnect(serve: Any) -> None:
    recorder = ReceiveRecorder()
    server = serve(echo_app(recorder), server="granian")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /raw HTTP/1.1\r\nHost: test\r\n\r\n")
        assert recorder.first_received.wait(5)
    assert recorder.done.wait(5), "the second receive never returned after the client went away"
    assert recorder.first_at_once is True
    assert [m["type"] for m in recorder.messages] == ["http.request", "http.disconnect"]
    assert recorder.messages[0].get("body", b"") == b"" and not recorder.messages[0].get("more_body")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /raw HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n",
        b"GET /raw HTTP/1.1\r\nHost: t\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["content-length-0", "chunked-capitals"],
)
def test_a_request_framed_with_a_body_is_read_from_granian(serve: Any, head: bytes) -> None:
    recorder = ReceiveRecorder()
    server = serve(echo_app(recorder), server="granian")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(head)
        assert recorder.first_received.wait(5)
    assert recorder.done.wait(5)
    assert [m["type"] for m in recorder.messages] == ["http.request", "http.disconnect"]


def test_bodies_reach_the_view_whatever_their_framing(serve: Any) -> None:
    server = serve(echo_app(), server="granian")
    with httpx.Client(timeout=5) as client:
        assert client.get(server.url + "/echo").content == b"[]"
        assert client.post(server.url + "/echo", content=b"abc").content == b"[abc]"
        chunks = iter([b"one ", b"two"])  # no length: sent chunked
        assert client.post(server.url + "/echo", content=chunks).content == b"[one two]"
        assert client.get(server.url + "/echo").content == b"[]"  # on the same connection
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"), data[:40]
    assert data.endswith(b"\r\n\r\n[]")


def test_http2_bodies_without_a_length_are_read(serve: Any) -> None:
    """HTTP/2 frames a body without Content-Length: such a request is never taken as bodiless."""
    server = serve(echo_app(), server="granian", http="auto")
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        response = client.post(server.url + "/echo", content=iter([b"one ", b"two"]))
        assert (response.http_version, response.content) == ("HTTP/2", b"[one two]")
        assert client.get(server.url + "/echo").content == b"[]"
