"""The uvicorn backend: real servers on 127.0.0.1, real HTTP, real processes and signals."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl

import httpx
import pytest

from aeros import WebServer

# Serving two apps at once, lifespan, startup failures, graceful stop with a request in flight,
# soft_limit, the access log and the
# multi-process behaviour are checked on this backend by the core's tests/test_thread_server.py
# and tests/test_workers.py, which run on every installed backend.


@pytest.fixture
def app() -> WebServer:
    app = WebServer(__name__)

    @app.route("/hello")
    async def hello():
        return "hello"

    @app.route("/slow")
    async def slow():
        await asyncio.sleep(1)
        return "slept"

    @app.route("/json")
    async def json_view():
        return {"pid": os.getpid()}

    return app


def test_serves_with_uvicorn(serve, app):
    server = serve(app, server="uvicorn")
    response = httpx.get(server.url + "/hello", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["server"] == "uvicorn"
    assert httpx.get(server.url + "/json", timeout=5).json() == {"pid": os.getpid()}
    assert httpx.get(server.url + "/missing", timeout=5).status_code == 404


def test_oversized_headers_get_431_and_the_server_keeps_serving(serve, app):
    server = serve(app, server="uvicorn")
    response = httpx.get(server.url + "/hello", headers={"x-big": "a" * 40_000}, timeout=5)
    assert response.status_code == 431
    many = {f"x-h{i}": "b" * 100 for i in range(300)}  # 30 KB in many small headers
    assert httpx.get(server.url + "/hello", headers=many, timeout=5).status_code == 431
    assert httpx.get(server.url + "/hello", headers={"x-ok": "a" * 1000}, timeout=5).status_code == 200


def test_malformed_request_line_gets_400(serve, app):
    server = serve(app, server="uvicorn")
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(b"NOT A REQUEST\r\n\r\n")
        reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")
    assert httpx.get(server.url + "/hello", timeout=5).status_code == 200


def test_tls(serve, app, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = serve(app, server="uvicorn", certfile=str(certfile), keyfile=str(keyfile))
    assert server.url.startswith("https://")
    response = httpx.get(server.url + "/hello", verify=ssl.create_default_context(cafile=str(ca_file)), timeout=5)
    assert response.status_code == 200
    assert response.text == "hello"


def test_unknown_backend_option_is_refused(app):
    with pytest.raises(RuntimeError, match="no_such_option"):
        app.run_in_thread(server="uvicorn", port=0, no_such_option=1, access_log_to_std=False)


def test_backend_options_reach_uvicorn(serve, app):
    server = serve(app, server="uvicorn", headers=[("x-served-by", "uvicorn-test")])
    response = httpx.get(server.url + "/hello", timeout=5)
    assert response.headers["x-served-by"] == "uvicorn-test"


def test_a_protocol_that_cannot_honour_the_connection_rules_is_refused(app):
    with pytest.raises(RuntimeError, match="uvicorn.*h11.*cannot honour"):
        app.run_in_thread(server="uvicorn", port=0, http="h11", access_log_to_std=False)


def test_include_server_header_false(serve):
    app = WebServer(__name__, include_server_header=False)

    @app.route("/")
    async def home():
        return "hi"

    server = serve(app, server="uvicorn")
    assert "server" not in httpx.get(server.url + "/", timeout=5).headers


# workers=2, SIGKILL/SIGTERM/SIGINT, spawn and load sharing on this backend: tests/test_workers.py
# runs every runner test on each installed backend.


def test_websocket_echo(serve):
    from websockets.sync.client import connect

    app = WebServer(__name__)

    @app.websocket("/ws")
    async def echo():
        from quart import websocket

        while True:
            message = await websocket.receive()
            await websocket.send(f"echo {message}")

    server = serve(app, server="uvicorn")
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo hi"


def test_a_failed_startup_leaves_no_lifespan_task_behind(monkeypatch):
    """uvicorn leaves the app's lifespan waiting after a failed startup (its process would exit);
    in a thread server that task outlived its loop and was destroyed pending."""
    import gc
    import sys

    app = WebServer(__name__)

    @app.before_serving
    async def fail():
        raise RuntimeError("no database")

    leaked: list = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: leaked.append(unraisable.object))
    for _ in range(3):
        with pytest.raises(RuntimeError, match="failed to start"):
            app.run_in_thread(port=0, server="uvicorn", access_log_to_std=False)
    gc.collect()
    assert leaked == []
