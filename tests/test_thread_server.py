"""run_in_thread: real HTTP on 127.0.0.1, limits, bad input, TLS + HTTP/2, logging keywords.

Tests taking ``backend`` run on every installed server backend.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import socket
import ssl
import threading

import httpx
import pytest

from aeros import WebServer
from aeros_core.testing import installed_backends


@pytest.fixture(params=installed_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def make_app(**options) -> WebServer:
    app = WebServer(__name__, **options)
    app.slow_started = threading.Event()  # type: ignore[attr-defined]

    @app.route("/")
    async def home():
        return {"ok": True}

    @app.route("/slow")
    async def slow():
        app.slow_started.set()  # type: ignore[attr-defined]
        await asyncio.sleep(1)
        return "slept"

    @app.route("/echo", methods=["POST"])
    async def echo():
        from quart import request

        return {"size": len(await request.get_data())}

    @app.route("/fail")
    async def fail():
        raise RuntimeError("kaput")

    return app


def raw_exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        chunks = []
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def test_two_servers_in_one_process_answer_and_stop(backend):
    app_one, app_two = make_app(), make_app()
    first = app_one.run_in_thread(port=0, access_log_to_std=False, server=backend)
    second = app_two.run_in_thread(port=0, access_log_to_std=False, server=backend)
    try:
        assert first.port != second.port
        assert first.url == f"http://127.0.0.1:{first.port}"
        assert httpx.get(first.url).json() == {"ok": True}
        assert httpx.get(second.url).json() == {"ok": True}
    finally:
        first.stop(timeout=5)
        second.stop(timeout=5)
    assert not first.running and not second.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(first.url, timeout=2)


def test_context_manager_stops_the_server():
    with make_app().run_in_thread(port=0, access_log_to_std=False) as server:
        assert httpx.get(server.url).status_code == 200
    assert not server.running


def test_stop_lets_a_request_in_flight_finish(backend):
    app = make_app()
    server = app.run_in_thread(port=0, access_log_to_std=False, server=backend)
    result = {}

    def slow_request():
        result["response"] = httpx.get(server.url + "/slow", timeout=10)

    client = threading.Thread(target=slow_request)
    client.start()
    assert app.slow_started.wait(10), "the request never reached the view"
    server.stop(timeout=10)
    client.join(10)
    assert result["response"].status_code == 200
    assert result["response"].text == "slept"


def test_lifespan_runs_startup_before_serving_and_shutdown_on_stop(serve, backend):
    app = make_app()
    events: list[str] = []

    @app.before_serving
    async def started():
        events.append("startup")

    @app.after_serving
    async def stopped():
        events.append("shutdown")

    @app.route("/events")
    async def show():
        return ",".join(events)

    server = serve(app, server=backend)
    assert httpx.get(server.url + "/events").text == "startup"
    server.stop(10)
    assert events == ["startup", "shutdown"]


def test_startup_failure_is_raised_in_the_caller(backend):
    app = make_app()

    @app.before_serving
    async def broken():
        raise RuntimeError("database unreachable")

    with pytest.raises(RuntimeError, match="failed to start"):
        app.run_in_thread(port=0, access_log_to_std=False, server=backend)
    # Nothing of the server is left pending on its closed loop (uvicorn's and granian's lifespan
    # tasks were, and failed a later test when the garbage collector destroyed them).
    # issubclass(type(...)): isinstance raises ReferenceError on a dead weakref.proxy
    left = [task for task in gc.get_objects() if issubclass(type(task), asyncio.Task) and task.get_loop().is_closed()]
    assert [task for task in left if not task.done()] == []


def test_unknown_server_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="'nonesuch'"):
        make_app().run_in_thread(port=0, server="nonesuch")


def test_soft_limit_answers_503_with_retry_after(serve, backend):
    app = make_app()
    release = threading.Event()  # the admitted requests stay in flight until the others were refused

    @app.route("/held")
    async def held():
        await asyncio.to_thread(release.wait, 10)
        return "held"

    server = serve(app, server=backend, soft_limit=2)

    async def burst() -> list[int]:
        release.clear()
        async with httpx.AsyncClient(timeout=15) as client:
            pending = [asyncio.ensure_future(client.get(server.url + "/held")) for _ in range(6)]
            statuses = []
            for done in asyncio.as_completed(pending):
                response = await done
                statuses.append(response.status_code)
                if response.status_code == 503:
                    assert response.headers["retry-after"] == "1"
                if len(statuses) == 4:
                    release.set()
            return statuses

    statuses = asyncio.run(burst())
    assert sorted(statuses) == [200, 200, 503, 503, 503, 503], statuses
    assert statuses[:4] == [503] * 4  # refused at once, while two were in flight
    assert httpx.get(server.url + "/", timeout=5).status_code == 200  # the limit frees up again
    assert sorted(asyncio.run(burst())) == [200, 200, 503, 503, 503, 503]


def test_body_over_max_content_length_gets_413_and_server_keeps_serving(serve, backend):
    app = make_app()
    app.config["MAX_CONTENT_LENGTH"] = 1024
    server = serve(app, server=backend)
    assert httpx.post(server.url + "/echo", content=b"x" * 100).json() == {"size": 100}
    assert httpx.post(server.url + "/echo", content=b"x" * 5000).status_code == 413
    assert httpx.get(server.url).status_code == 200


def test_oversized_headers_get_4xx_and_server_keeps_serving(serve, backend):
    server = serve(make_app(), server=backend)
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
    answer = raw_exchange(server.port, huge)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:80]
    assert httpx.get(server.url).status_code == 200


def test_malformed_request_line_gets_400_and_server_keeps_serving(serve, backend):
    server = serve(make_app(), server=backend)
    answer = raw_exchange(server.port, b"THIS IS NOT HTTP\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert httpx.get(server.url).status_code == 200


def test_server_header_follows_include_server_header(serve, backend):
    with_header = serve(make_app(), server=backend)
    if backend == "granian":  # a documented limit of that backend: it says so at start
        with pytest.raises(RuntimeError, match="cannot leave out the Server header"):
            serve(make_app(include_server_header=False), server=backend)
        return
    without_header = serve(make_app(include_server_header=False), server=backend)
    assert "server" in httpx.get(with_header.url).headers
    assert "server" not in httpx.get(without_header.url).headers


def test_tls_with_http2(serve, tmp_path):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(certfile)
    certificate.private_key_pem.write_to_path(keyfile)
    authority.cert_pem.write_to_path(cafile)
    server = serve(make_app(), certfile=str(certfile), keyfile=str(keyfile))
    assert server.url.startswith("https://127.0.0.1:")
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cafile))) as client:
        response = client.get(server.url)
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.json() == {"ok": True}


def test_tls_needs_both_files():
    with pytest.raises(ValueError, match="certfile and keyfile"):
        make_app().run_in_thread(port=0, certfile="cert.pem")


def test_access_log_file_has_one_line_per_request(serve, tmp_path, backend):
    log_file = tmp_path / "access.log"
    server = serve(make_app(), server=backend, access_log_file=str(log_file))
    httpx.get(server.url + "/?q=1")
    httpx.get(server.url + "/missing")
    server.stop()
    lines = log_file.read_text().splitlines()
    assert len(lines) == 2
    assert '"GET /?q=1 HTTP/1.1" 200' in lines[0]
    assert '"GET /missing HTTP/1.1" 404' in lines[1]
    assert lines[0].startswith("127.0.0.1 - - [")
    assert re.search(r"\d+\.\d\dms request_id=[0-9a-f]{32}$", lines[0]), lines[0]


def test_traceback_false_keeps_the_error_but_not_the_traceback(serve, caplog):
    app = make_app()
    server = serve(app, traceback=False)
    records = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    app.logger.addHandler(handler)
    try:
        assert httpx.get(server.url + "/fail").status_code == 500
    finally:
        app.logger.removeHandler(handler)
    assert records, "the error was not logged"
    assert records[0].exc_info is None
    assert "RuntimeError: kaput" in records[0].getMessage()


def test_a_known_backend_that_is_not_installed_names_its_extra():
    with pytest.raises(ValueError, match=r"pip install 'aeros\[uvicorn\]'"):
        WebServer(__name__, disable_plugins=["uvicorn"]).run_in_thread(port=0, server="uvicorn")
