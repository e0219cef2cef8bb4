"""Stopping a server, seen from its connections (every backend): once accepting stops, responses
carry ``Connection: close`` and the connection closes after them, idle kept-alive connections are
closed, and a request already written is answered, not lost."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from aeros import WebServer
from aeros_core.testing import installed_backends

TIMEOUT = 10.0


def make_app() -> tuple[WebServer, threading.Event, threading.Event]:
    app = WebServer(__name__)
    entered, release = threading.Event(), threading.Event()

    @app.route("/fast")
    async def fast():
        return "fast"

    @app.route("/slow")
    async def slow():
        entered.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, release.wait, TIMEOUT)
        return "slow"

    return app, entered, release


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        rest += chunk
    return head.lower(), rest


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or TIMEOUT passes (False)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def stop_in_background(server) -> threading.Thread:
    thread = threading.Thread(target=server.stop, kwargs={"timeout": 20}, daemon=True)
    thread.start()
    return thread


GET = b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.parametrize("backend", installed_backends())
def test_in_the_drain_idle_connections_close_and_the_last_response_says_close(serve, backend):
    app, entered, release = make_app()
    server = serve(app, server=backend)
    busy, idle = connect(server.port), connect(server.port)
    idle.sendall(GET % b"/fast")
    head, _ = read_response(idle)
    assert b"connection: close" not in head  # kept alive
    busy.sendall(GET % b"/slow")
    assert entered.wait(TIMEOUT)
    stopping = stop_in_background(server)
    try:
        assert closed_by_server(idle), f"{backend}: the idle kept-alive connection stayed open in the drain"
        release.set()
        head, body = read_response(busy)
        assert body == b"slow"
        assert b"connection: close" in head, f"{backend}: {head!r}"
        assert closed_by_server(busy)
    finally:
        release.set()
        stopping.join(25)
    busy.close()
    idle.close()


@pytest.mark.parametrize("backend", installed_backends())
def test_a_request_written_just_before_the_stop_is_answered(serve, backend):
    app, _, _ = make_app()
    server = serve(app, server=backend)
    sock = connect(server.port)
    sock.sendall(GET % b"/fast")
    read_response(sock)  # now idle, kept alive
    sock.sendall(GET % b"/fast")
    stopping = stop_in_background(server)
    try:
        _, body = read_response(sock)  # Connection: close only if the stop came before the response
        assert body == b"fast"
        assert closed_by_server(sock)
    finally:
        stopping.join(25)
    sock.close()


@pytest.mark.parametrize("backend", installed_backends())
def test_connections_queued_when_accepting_stops_are_served_not_reset(serve, backend):
    app = WebServer(__name__)
    entered, stop_asked = threading.Event(), threading.Event()
    queued: list[socket.socket] = []

    @app.route("/fast")
    async def fast():
        return "fast"

    @app.route("/block")
    async def block():
        # Blocks the event loop: the connections below wait in the listen queue meanwhile.
        entered.set()
        stop_asked.wait(TIMEOUT)
        return "unblocked"

    server = serve(app, server=backend)
    blocker = connect(server.port)
    blocker.sendall(GET % b"/block")
    assert entered.wait(TIMEOUT)
    for _ in range(5):
        sock = connect(server.port)  # the kernel completes the handshake; the server has not accepted
        sock.sendall(GET % b"/fast")
        queued.append(sock)
    stopping = stop_in_background(server)
    # stop() asks the blocked loop to stop at once, then waits; give it the moment to ask.
    stopping.join(0.2)
    stop_asked.set()
    try:
        for sock in queued:
            try:
                _, body = read_response(sock)
            except ConnectionResetError:
                pytest.fail(f"{backend}: a connection queued when accepting stopped was reset")
            assert body == b"fast"
    finally:
        stopping.join(25)
        for sock in [blocker, *queued]:
            sock.close()


@pytest.mark.parametrize("backend", installed_backends())
def test_a_server_stopped_as_soon_as_it_started_still_runs_the_app_shutdown(backend):
    app = WebServer(__name__)
    shutdowns: list[int] = []

    @app.after_serving
    async def stopped():
        shutdowns.append(1)

    for attempt in range(10):
        server = app.run_in_thread(port=0, server=backend, access_log_to_std=False)
        server.stop(timeout=15)
        assert len(shutdowns) == attempt + 1, f"{backend}: after_serving skipped in stop {attempt + 1}"
