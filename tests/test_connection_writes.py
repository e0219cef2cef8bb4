"""One write per response (CoalescingTransport) and keep-alive deadlines, on real connections.

The end-to-end tests run on Hypercorn and uvicorn, whose connection handling aeros shortens
(``aeros_core/builtins/hypercorn_connection.py``, ``aeros_uvicorn/protocol.py``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from aeros import WebServer
from aeros_core.hookspecs import hookimpl
from aeros_core.runner.coalesce import FLUSH_AT, CoalescingTransport
from aeros_core.testing import installed_backends


@pytest.fixture(params=installed_backends("hypercorn", "uvicorn"))
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


# --- CoalescingTransport over a real loopback connection --------------------------------------


class CountingTransport:
    """A real transport that counts the writes reaching it (what reaches the socket)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def connected_pair() -> tuple[CoalescingTransport, CountingTransport, asyncio.StreamReader, list[Any]]:
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client_reader, client_writer = await asyncio.open_connection("127.0.0.1", port)
    server_writer = await asyncio.wait_for(accepted, 5)
    counting = CountingTransport(server_writer.transport)
    return CoalescingTransport(counting), counting, client_reader, [client_writer, server]


async def test_writes_of_one_loop_turn_leave_as_one_write_in_order() -> None:
    coalescer, counting, reader, closables = await connected_pair()
    try:
        coalescer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        coalescer.write(b"")
        coalescer.write(memoryview(b"hello"))
        assert counting.writes == []  # held until the loop turn ends
        assert coalescer.get_write_buffer_size() >= 5
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert counting.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
        received = await asyncio.wait_for(reader.readexactly(len(counting.writes[0])), 5)
        assert received == counting.writes[0]
    finally:
        coalescer.close()
        for closable in closables:
            closable.close()


async def test_large_writes_go_out_at_once_and_close_flushes_first() -> None:
    coalescer, counting, reader, closables = await connected_pair()
    try:
        coalescer.write(b"head;")
        coalescer.write(b"x" * FLUSH_AT)
        assert counting.writes == [b"head;" + b"x" * FLUSH_AT]  # no waiting for the loop
        coalescer.write(b"tail")
        coalescer.close()  # held bytes go before the connection closes
        assert counting.writes[-1] == b"tail"
        data = await asyncio.wait_for(reader.read(), 10)  # to EOF
        assert data == b"head;" + b"x" * FLUSH_AT + b"tail"
    finally:
        for closable in closables:
            closable.close()


# --- real servers ---------------------------------------------------------------------------------


class ShortKeepAlive:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @hookimpl
    def aeros_server_config(self, settings: Any) -> None:
        settings.keep_alive_timeout = self.seconds


def keep_alive_app(seconds: float) -> WebServer:
    app = WebServer(__name__, plugins=[ShortKeepAlive(seconds)])

    @app.route("/hello")
    async def hello() -> str:
        return "hello"

    @app.route("/slow")
    async def slow() -> str:
        await asyncio.sleep(1.0)
        return "slow"

    return app


def read_response(conn: socket.socket, buffer: bytearray) -> bytes:
    """One response with a Content-Length from ``conn`` (what follows stays in ``buffer``)."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed mid-response: {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    buffer[:] = rest[length:]
    return head + b"\r\n\r\n" + rest[:length]


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def test_each_request_restarts_the_keep_alive_deadline(backend: str) -> None:
    with keep_alive_app(0.6).run_in_thread(server=backend, access_log_to_std=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            buffer = bytearray()
            for _ in range(4):  # 4 x 0.3 s on one connection: longer than the deadline in all
                conn.sendall(get("/hello"))
                assert read_response(conn, buffer).endswith(b"\r\n\r\nhello")
                time.sleep(0.3)
            # idle past the deadline: the server closes the connection
            conn.settimeout(10)
            assert conn.recv(65536) == b""


def test_a_request_longer_than_the_keep_alive_deadline_is_answered(backend: str) -> None:
    with keep_alive_app(0.3).run_in_thread(server=backend, access_log_to_std=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            buffer = bytearray()
            conn.sendall(get("/slow"))
            assert read_response(conn, buffer).endswith(b"\r\n\r\nslow")
            conn.sendall(get("/hello"))  # right after: still open
            assert read_response(conn, buffer).endswith(b"\r\n\r\nhello")


def test_pipelined_requests_are_answered_in_order(backend: str) -> None:
    with keep_alive_app(5).run_in_thread(server=backend, access_log_to_std=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(get("/slow") + get("/hello") + get("/hello"))
            buffer = bytearray()
            bodies = [read_response(conn, buffer).rpartition(b"\r\n\r\n")[2] for _ in range(3)]
            assert bodies == [b"slow", b"hello", b"hello"]


def test_idle_connections_are_closed_at_shutdown_without_waiting_for_the_deadline(backend: str) -> None:
    server = keep_alive_app(60).run_in_thread(server=backend, access_log_to_std=False, graceful_timeout=30)
    try:
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        conn.sendall(get("/hello"))
        assert read_response(conn, bytearray()).endswith(b"hello")
    finally:
        started = time.monotonic()
        server.stop(timeout=40)
        stopped_after = time.monotonic() - started
    conn.settimeout(5)
    try:
        assert conn.recv(65536) == b""
    except ConnectionResetError:
        pass  # closed as well
    finally:
        conn.close()
    # an idle keep-alive connection must not hold shutdown for its 60 s deadline or the 30 s grace
    assert stopped_after < 20, stopped_after


def test_a_client_that_does_not_read_pauses_a_streamed_response(backend: str) -> None:
    """Backpressure: while the client reads nothing, the app's stream stops once the socket buffers
    are full (the server writes without waiting only while its transport is not paused); then every
    byte arrives, in order."""
    app = WebServer(__name__)
    produced: list[int] = []
    chunks, size = 400, 65536  # 25 MB: more than loopback's socket buffers hold

    @app.route("/stream")
    async def stream() -> Any:
        async def body() -> Any:
            for index in range(chunks):
                produced.append(index)
                yield bytes([65 + index % 26]) * size

        return body()

    with app.run_in_thread(server=backend, access_log_to_std=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as conn:
            conn.sendall(get("/stream"))
            time.sleep(1.0)
            assert 0 < len(produced) < chunks  # paused, not buffered in the server
            received = bytearray()
            while not received.endswith(b"\r\n0\r\n\r\n"):
                data = conn.recv(1 << 20)
                assert data, "connection closed early"
                received += data
    head, _, framed = bytes(received).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    body, position = bytearray(), 0
    while True:
        line_end = framed.index(b"\r\n", position)
        length = int(framed[position:line_end], 16)
        if length == 0:
            break
        body += framed[line_end + 2 : line_end + 2 + length]
        position = line_end + 2 + length + 2
    assert len(body) == chunks * size
    assert all(body[index * size] == 65 + index % 26 for index in range(chunks))
