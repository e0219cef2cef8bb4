"""The granian backend: real servers on 127.0.0.1, real HTTP, real processes and signals."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading

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


def test_serves_with_granian(serve, app):
    server = serve(app, server="granian")
    response = httpx.get(server.url + "/hello", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["server"] == "granian"
    assert httpx.get(server.url + "/json", timeout=5).json() == {"pid": os.getpid()}
    assert httpx.get(server.url + "/missing", timeout=5).status_code == 404


def test_requests_beyond_graceful_timeout_are_cancelled_not_left_hanging(serve):
    app = WebServer(__name__)
    events: list[str] = []
    started = threading.Event()

    @app.route("/forever")
    async def forever():
        started.set()
        await asyncio.sleep(30)
        return "never"

    @app.after_serving
    async def stopped():
        events.append("shutdown")

    server = serve(app, server="granian", graceful_timeout=0.5)
    result: dict = {}

    def stuck_request() -> None:
        try:
            result["status"] = httpx.get(server.url + "/forever", timeout=10).status_code
        except httpx.HTTPError as error:
            result["status"] = repr(error)

    client = threading.Thread(target=stuck_request)
    client.start()
    assert started.wait(10), "the request never reached the view"
    server.stop(timeout=10)
    client.join(15)
    assert result["status"] == 500  # answered when cancelled, not a read timeout
    assert events == ["shutdown"]  # the lifespan shutdown still ran
    assert not server.running


def test_oversized_headers_get_431_and_the_server_keeps_serving(serve, app):
    server = serve(app, server="granian")
    response = httpx.get(server.url + "/hello", headers={"x-big": "a" * 40_000}, timeout=5)
    assert response.status_code == 431
    assert httpx.get(server.url + "/hello", headers={"x-ok": "a" * 1000}, timeout=5).status_code == 200


@pytest.fixture
def tls_files(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return str(certfile), str(keyfile), context


def test_tls_and_http2_by_alpn(serve, app, tls_files):
    certfile, keyfile, context = tls_files
    server = serve(app, server="granian", certfile=certfile, keyfile=keyfile)
    assert server.url.startswith("https://")
    response = httpx.get(server.url + "/hello", verify=context, timeout=5)
    assert (response.status_code, response.text, response.http_version) == (200, "hello", "HTTP/1.1")
    with httpx.Client(http2=True, verify=context, timeout=5) as client:
        response = client.get(server.url + "/hello")
    assert (response.status_code, response.text, response.http_version) == (200, "hello", "HTTP/2")


def test_cleartext_http2_only_when_asked(serve, app):
    plain = serve(app, server="granian")
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(plain.url + "/hello")
    auto = serve(app, server="granian", http="auto")
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        response = client.get(auto.url + "/hello")
    assert (response.status_code, response.http_version) == (200, "HTTP/2")


def test_unknown_or_runner_owned_options_are_refused(app):
    with pytest.raises(RuntimeError, match="no_such_option"):
        app.run_in_thread(server="granian", port=0, no_such_option=1, access_log_to_std=False)
    with pytest.raises(RuntimeError, match="address"):
        app.run_in_thread(server="granian", port=0, address="0.0.0.0", access_log_to_std=False)


def test_include_server_header_false_is_refused():
    app = WebServer(__name__, include_server_header=False)
    with pytest.raises(RuntimeError, match="include_server_header"):
        app.run_in_thread(server="granian", port=0, access_log_to_std=False)


def test_websocket_echo(serve):
    from websockets.sync.client import connect

    # see the aeros-uvicorn tests: the aeros-request plugin breaks Quart websockets
    app = WebServer(__name__, disable_plugins=["request"])

    @app.websocket("/ws")
    async def echo():
        from quart import websocket

        while True:
            message = await websocket.receive()
            await websocket.send(f"echo {message}")

    server = serve(app, server="granian")
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo hi"


# workers=2, SIGKILL/SIGTERM/SIGINT, spawn and load sharing on this backend: tests/test_workers.py
# runs every runner test on each installed backend.


def test_stop_always_runs_the_app_shutdown_within_graceful_timeout_plus_one_second():
    """Twenty stops, half of them with a request that outlives graceful_timeout: each one runs the
    app's after_serving and returns within graceful_timeout + 1 s (stop() raises TimeoutError)."""
    graceful = 0.5
    app = WebServer(__name__)
    shutdowns: list[int] = []
    entered = threading.Event()

    @app.route("/hello")
    async def hello():
        return "hello"

    @app.route("/forever")
    async def forever():
        entered.set()
        await asyncio.sleep(30)
        return "never"

    @app.after_serving
    async def stopped():
        shutdowns.append(1)

    for attempt in range(20):
        entered.clear()
        server = app.run_in_thread(port=0, server="granian", graceful_timeout=graceful, access_log_to_std=False)
        with httpx.Client(timeout=10) as client:  # a kept-alive connection stays open through the stop
            assert client.get(server.url + "/hello").status_code == 200
            stuck = None
            if attempt % 2:
                stuck = threading.Thread(
                    target=httpx.get, args=(server.url + "/forever",), kwargs={"timeout": 10}, daemon=True
                )
                stuck.start()
                assert entered.wait(10)
            server.stop(timeout=graceful + 1)
            if stuck is not None:
                stuck.join(10)
        assert len(shutdowns) == attempt + 1, f"after_serving skipped in stop {attempt + 1}"
