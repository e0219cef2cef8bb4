"""The connection rules (aeros_core.builtins.connections) on every backend, with raw sockets:
max_connections, header_timeout, the minimum body rate, the shed log, and the file-descriptor limit."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from aeros import WebServer
from aeros_core.runner.fdlimit import connections_for
from aeros_core.testing import installed_backends

TIMEOUT = 10.0
# granian's Rust server counts connections itself (backpressure): beyond the limit they wait in the
# listen queue; it neither evicts nor answers 503 (see plugins/aeros_granian/README.md).
PYTHON_BACKENDS = installed_backends("hypercorn", "uvicorn")


def make_app() -> tuple[WebServer, threading.Event, threading.Semaphore]:
    app = WebServer(__name__)
    release = threading.Event()
    entered = threading.Semaphore(0)

    @app.route("/fast")
    async def fast():
        return "fast"

    @app.route("/slow")
    async def slow():
        entered.release()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        return "slow"

    @app.route("/upload", methods=["POST"])
    async def upload():
        from quart import request

        return str(len(await request.get_data()))

    return app, release, entered


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as closed)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def status_of(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        assert chunk, "closed before a status line"
        line += chunk
    return line


GET = b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.parametrize("backend", PYTHON_BACKENDS)
def test_at_max_connections_a_new_connection_replaces_the_oldest_idle_one(serve, backend):
    app, release, entered = make_app()
    server = serve(app, server=backend, max_connections=2)
    try:
        busy = connect(server.port)
        busy.sendall(GET % b"/slow")
        assert entered.acquire(timeout=TIMEOUT)
        idle = connect(server.port)  # sends nothing
        newcomer = connect(server.port)
        newcomer.sendall(GET % b"/fast")
        assert status_of(newcomer).startswith(b"HTTP/1.1 200")
        assert read_all(idle) == b"", "the idle connection should have been closed without an answer"
    finally:
        release.set()
    assert status_of(busy).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("backend", PYTHON_BACKENDS)
def test_at_max_connections_with_every_connection_busy_a_new_one_gets_503_and_is_closed(serve, backend):
    app, release, entered = make_app()
    server = serve(app, server=backend, max_connections=2)
    try:
        busy = [connect(server.port) for _ in range(2)]
        for sock in busy:
            sock.sendall(GET % b"/slow")
        for _ in busy:  # both requests running
            assert entered.acquire(timeout=TIMEOUT)
        refused = connect(server.port)
        answer = read_all(refused)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
        assert b"retry-after" in answer.lower()
    finally:
        release.set()
    for sock in busy:
        assert status_of(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("backend", installed_backends())
def test_a_head_that_does_not_arrive_within_header_timeout_is_closed(serve, backend):
    app, _, _ = make_app()
    server = serve(app, server=backend, header_timeout=0.5, keep_alive_timeout=30)
    silent = connect(server.port)
    slowloris = connect(server.port)
    slowloris.sendall(b"GET /fast HTTP/1.1\r\nhost: x\r\n")  # never finished
    assert read_all(silent) == b""  # closed (a read timeout would raise)
    assert not read_all(slowloris).startswith(b"HTTP/1.1 200")
    # still serving
    sock = connect(server.port)
    sock.sendall(GET % b"/fast")
    assert status_of(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("backend", PYTHON_BACKENDS)
def test_a_body_trickling_below_the_minimum_rate_is_closed_and_logged(serve, backend):
    app, _, _ = make_app()
    server = serve(app, server=backend, header_timeout=0.5)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("aeros.server").addHandler(handler)
    try:
        trickle = connect(server.port)
        trickle.sendall(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n" + b"x" * 10)
        assert read_all(trickle) == b""  # closed by the server, no answer
    finally:
        logging.getLogger("aeros.server").removeHandler(handler)
    assert any("bodies slower than" in record.getMessage() for record in records), [r.getMessage() for r in records]
    sock = connect(server.port)
    sock.sendall(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
    assert status_of(sock).startswith(b"HTTP/1.1 200")


def test_the_runner_raises_the_file_descriptor_limit_and_derives_max_connections(tmp_path):
    script = tmp_path / "limits.py"
    script.write_text(
        textwrap.dedent(
            """
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024))
            from aeros import WebServer
            from aeros_core.runner import prepare
            settings = prepare(WebServer(__name__), {"access_log_to_std": False})
            print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], settings.max_connections)
            """
        )
    )
    output = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert output.stdout.split() == ["1024", str(connections_for(1024))], output.stderr
    assert connections_for(1024) == 896  # an eighth kept for files and upstream connections


def test_hypercorn_serves_each_connection_with_the_aeros_handler():
    """The connection rules live in AerosTCPServer, reached through a private Hypercorn seam
    (docs/internals.md, "The list"): fails when the installed Hypercorn no longer allows it."""
    from hypercorn.asyncio import run as hypercorn_run

    from aeros_core.builtins.hypercorn_connection import aeros_tcp_server, aeros_worker_serve

    assert "TCPServer" in hypercorn_run.worker_serve.__globals__
    assert aeros_worker_serve().__globals__["TCPServer"] is aeros_tcp_server()
    assert aeros_worker_serve().__code__ is hypercorn_run.worker_serve.__code__


@pytest.mark.parametrize("backend", installed_backends())
def test_a_websocket_outlives_header_timeout_and_leaves_no_connection_counted(serve, backend):
    from websockets.sync.client import connect as ws_connect

    app = WebServer(__name__)

    @app.websocket("/ws")
    async def late():
        from quart import websocket

        await websocket.receive()
        await asyncio.sleep(1.5)  # the app's own pace: three header_timeouts
        await websocket.send("still here")

    @app.route("/fast")
    async def fast():
        return "fast"

    server = serve(app, server=backend, header_timeout=0.5, keep_alive_timeout=0.5, max_connections=2)
    with ws_connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("go")
        assert ws.recv(timeout=TIMEOUT) == "still here"
    for _ in range(3):  # closed WebSockets leave no connection counted behind
        with ws_connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5, close_timeout=5):
            pass
    sock = connect(server.port)
    sock.sendall(GET % b"/fast")
    assert status_of(sock).startswith(b"HTTP/1.1 200")
