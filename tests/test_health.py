"""health_path, ready_path and @app.ready_check, answered at the edge on every backend."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import pytest

from aeros import WebServer
from aeros_core.runner.lifecycle import Lifecycle, Phase
from aeros_core.runner.settings import ServerSettings
from aeros_core.testing import installed_backends

PROBES = {"health_path": "/healthz", "ready_path": "/readyz"}


def make_app(**keywords: Any) -> WebServer:
    app = WebServer(__name__, **keywords)

    @app.route("/")
    async def home() -> str:
        return "home " * 200  # big enough to be compressed when aeros-compress is on

    return app


@pytest.mark.parametrize("server", installed_backends())
def test_probes_answer_on_every_backend_and_stay_out_of_the_log(serve, server, tmp_path):
    log = tmp_path / "access.log"
    running = serve(make_app(), server=server, access_log_file=str(log), **PROBES)
    for path in ("/healthz", "/readyz"):
        response = httpx.get(running.url + path, headers={"Accept-Encoding": "gzip, br"}, timeout=10)
        assert (response.status_code, response.text) == (200, "ok\n")
        assert response.headers["cache-control"] == "no-store" and "content-encoding" not in response.headers
        assert httpx.head(running.url + path, timeout=10).status_code == 200
    assert httpx.get(running.url + "/", timeout=10).status_code == 200
    running.stop(timeout=10)
    logged = log.read_text()
    assert "GET / " in logged and "/healthz" not in logged and "/readyz" not in logged


def test_log_health_true_logs_them(serve, tmp_path):
    log = tmp_path / "access.log"
    running = serve(make_app(), access_log_file=str(log), log_health=True, **PROBES)
    httpx.get(running.url + "/healthz", timeout=10)
    httpx.get(running.url + "/readyz", timeout=10)
    running.stop(timeout=10)
    assert '"GET /healthz HTTP/1.1" 200' in log.read_text() and '"GET /readyz HTTP/1.1" 200' in log.read_text()


def test_probes_are_not_cached_and_not_compressed_with_the_plugins(serve):
    pytest.importorskip("aeros_cache")
    pytest.importorskip("aeros_compress")
    from aeros import Gzip, SimpleCache

    app = make_app(cache=SimpleCache(), compression=Gzip(min_size=1))
    checks = {"ready": True}

    @app.ready_check
    async def flag() -> bool:
        return checks["ready"]

    running = serve(app, **PROBES)
    first = httpx.get(running.url + "/readyz", headers={"Accept-Encoding": "gzip"}, timeout=10)
    checks["ready"] = False
    second = httpx.get(running.url + "/readyz", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert (first.status_code, second.status_code) == (200, 503)
    assert "content-encoding" not in first.headers and "content-encoding" not in second.headers


def test_ready_checks_false_raising_or_slow_mean_503_never_500(serve):
    app = make_app()
    state = {"mode": "ok"}

    @app.ready_check(timeout=0.2)
    async def database() -> bool:
        if state["mode"] == "raise":
            raise ConnectionError("database down")
        if state["mode"] == "slow":
            await asyncio.sleep(30)
        return state["mode"] == "ok"

    running = serve(app, **PROBES)
    statuses = {}
    for mode in ("ok", "false", "raise", "slow", "ok"):
        state["mode"] = mode
        statuses[mode] = httpx.get(running.url + "/readyz", timeout=10).status_code
        assert httpx.get(running.url + "/healthz", timeout=10).status_code == 200  # liveness is not readiness
    assert statuses == {"ok": 200, "false": 503, "raise": 503, "slow": 503}


def test_ready_check_must_be_async():
    app = make_app()
    with pytest.raises(TypeError, match="async def"):
        app.ready_check(lambda: True)


def test_other_methods_and_paths_reach_the_app(serve):
    running = serve(make_app(), **PROBES)
    assert httpx.post(running.url + "/readyz", timeout=10).status_code == 404  # not the probe: the app's 404
    assert httpx.get(running.url + "/readyz/x", timeout=10).status_code == 404


# --- the lifecycle, at the ASGI level --------------------------------------------------------


async def call(app: Any, path: str) -> int:
    statuses = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "scheme": "http", "query_string": b""}
    await app(scope, receive, send)
    return statuses[0]


def test_ready_follows_each_phase_of_the_lifecycle():
    app = make_app()
    lifecycle = Lifecycle()
    entry = app.asgi_entry(ServerSettings(access_log_to_std=False, lifecycle=lifecycle, **PROBES))

    async def walk() -> list[tuple[str, int, int]]:
        seen = []
        for phase in Phase:
            lifecycle.advance(phase)
            seen.append((phase.name, await call(entry, "/readyz"), await call(entry, "/healthz")))
        return seen

    assert asyncio.run(walk()) == [
        ("STARTING", 503, 200),
        ("SERVING", 200, 200),
        ("DRAINING", 503, 200),
        ("CLOSING", 503, 200),
        ("STOPPED", 503, 200),
    ]


def test_external_server_readiness_follows_the_lifespan():
    app = make_app()
    entry = app.asgi_entry(ServerSettings(server="external", access_log_to_std=False, **PROBES))

    async def scenario() -> list[int]:
        seen = [await call(entry, "/readyz")]
        messages: asyncio.Queue = asyncio.Queue()
        sent: asyncio.Queue = asyncio.Queue()
        lifespan = asyncio.ensure_future(
            entry({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, sent.put)
        )
        await messages.put({"type": "lifespan.startup"})
        assert (await asyncio.wait_for(sent.get(), 10))["type"] == "lifespan.startup.complete"
        seen.append(await call(entry, "/readyz"))
        await messages.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(sent.get(), 10))["type"] == "lifespan.shutdown.complete"
        seen.append(await call(entry, "/readyz"))
        await asyncio.wait_for(lifespan, 10)
        return seen

    assert asyncio.run(scenario()) == [503, 200, 503]


# --- SIGTERM in a real process: ready_path 503 during drain_delay ----------------------------

DRAIN_SCRIPT = """
import os
from aeros import WebServer

app = WebServer(__name__)

@app.route("/pid")
async def pid():
    return str(os.getpid())

if __name__ == "__main__":
    app.run(port=0, workers=int(os.environ["WORKERS"]), server=os.environ["SERVER"], access_log_to_std=False,
            health_path="/healthz", ready_path="/readyz", drain_delay=2, graceful_timeout=5)
"""


@pytest.mark.parametrize("server, workers", [(server, 1) for server in installed_backends()] + [("hypercorn", 2)])
def test_ready_path_turns_503_on_sigterm_while_still_serving(script_server, server, workers):
    process = script_server(DRAIN_SCRIPT, env={"SERVER": server, "WORKERS": str(workers)})
    url = process.wait_ready()
    assert httpx.get(url + "/readyz", timeout=5).status_code == 200
    process.signal(signal.SIGTERM)
    statuses: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            statuses.append(httpx.get(url + "/readyz", timeout=2, headers={"Connection": "close"}).status_code)
        except httpx.HTTPError:
            break  # accepting stopped after drain_delay
        if statuses[-1] == 503:
            break
    assert statuses and statuses[-1] == 503, (
        f"ready_path never answered 503 after SIGTERM: {statuses}\n{process.output}"
    )
    # while draining, the app still serves and liveness holds
    assert httpx.get(url + "/pid", timeout=5, headers={"Connection": "close"}).status_code == 200
    assert httpx.get(url + "/healthz", timeout=5, headers={"Connection": "close"}).status_code == 200
    assert process.wait(30) == 0
