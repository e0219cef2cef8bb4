"""``aeros_core.observe``: worker events from the supervisor, event listeners, access-log fields, routes."""

from __future__ import annotations

import json
import os
import signal

import httpx

from aeros import AsgiWrapper, Stage, WebServer, hookimpl
from aeros_core.observe import UNMATCHED, listener

from .conftest import ScriptServer

EVENT_SCRIPT = """
    import json
    import os

    from aeros import WebServer, hookimpl

    class Recorder:
        @hookimpl
        def aeros_worker_event(self, app, event, reason, pid):
            with open(os.environ["EVENTS"], "a") as events:
                events.write(json.dumps({"event": event, "reason": reason, "pid": pid, "by": os.getpid()}) + "\\n")

    class Broken:
        @hookimpl
        def aeros_worker_event(self, app, event, reason, pid):
            raise RuntimeError("a broken plugin must not stop the supervisor")

    app = WebServer(__name__, plugins=[Recorder, Broken])

    @app.route("/pid")
    async def pid():
        return str(os.getpid())

    if __name__ == "__main__":
        app.run(port=0, workers=2, access_log_to_std=False)
"""


def wait_for(predicate, timeout: float):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    return None


def test_the_supervisor_reports_a_killed_worker_once_with_its_pid(script_server, tmp_path):
    events = tmp_path / "events.jsonl"
    server: ScriptServer = script_server(EVENT_SCRIPT, env={"EVENTS": str(events)})
    url = server.wait_ready()
    victim = int(httpx.get(url + "/pid", timeout=5).text)
    os.kill(victim, signal.SIGKILL)

    def replacement_serves() -> bool:
        try:
            return httpx.get(url + "/pid", timeout=5, headers={"Connection": "close"}).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(lambda: events.exists() and events.read_text().strip(), 10), server.output
    assert wait_for(replacement_serves, 10), "the supervisor stopped serving after a plugin raised"
    (line,) = events.read_text().splitlines()
    assert json.loads(line) == {"event": "replaced", "reason": "killed", "pid": victim, "by": server.process.pid}
    assert "aeros_worker_event failed" in server.output  # the broken plugin was logged, not fatal


class Listening:
    def __init__(self, observing: bool) -> None:
        self.observing = observing

    @hookimpl
    def aeros_cache_event(self, app, scope, result):
        pass


def test_listener_is_none_unless_an_observing_plugin_implements_the_event():
    assert listener(WebServer(__name__, disable_plugins=["metrics", "otel"]), "aeros_compress_event") is None
    off = WebServer(__name__, disable_plugins=["metrics", "otel"], plugins=[Listening(False)])
    assert listener(off, "aeros_cache_event") is None
    on = WebServer(__name__, disable_plugins=["metrics", "otel"], plugins=[Listening(True)])
    assert listener(on, "aeros_cache_event") is not None


class UserField:
    """Puts values in the scope at the edge and contributes them to the access log."""

    @hookimpl
    def aeros_asgi_wrapper(self, app, settings):
        def wrap(inner):
            async def tagged(scope, receive, send):
                if scope["type"] == "http":
                    scope["test.fields"] = {"user": "alice", "tenant": "t1"}
                await inner(scope, receive, send)

            return tagged

        return AsgiWrapper(Stage.HEADERS, wrap)

    @hookimpl
    def aeros_access_log_fields(self, app, settings):
        return {
            "user": lambda scope: scope.get("test.fields", {}).get("user"),
            "tenant": lambda scope: scope.get("test.fields", {}).get("tenant"),
            "absent": lambda scope: None,
        }


def test_a_plugin_adds_fields_to_the_access_log_line(serve, tmp_path):
    app = WebServer(__name__, plugins=[UserField])

    @app.route("/")
    async def home() -> str:
        return "home"

    log = tmp_path / "access.log"
    server = serve(app, access_log_file=str(log), request_id_header=None)
    assert httpx.get(server.url + "/", timeout=10).status_code == 200
    server.stop(timeout=10)
    (line,) = log.read_text().splitlines()
    assert line.endswith("ms user=alice tenant=t1"), line


def test_routes_are_url_rules_and_unmatched_for_the_rest():
    from aeros_core.observe import RouteRecorder

    app = WebServer(__name__)

    @app.route("/users/<int:id>")
    async def user(id: int) -> str:
        return str(id)

    routes = RouteRecorder(app)
    # answered before Quart routed it (an edge cache hit): matched once, then remembered
    assert routes.route({"method": "GET", "path": "/users/7"}, 200) == "/users/<int:id>"
    assert routes.memo == {("GET", "/users/7"): "/users/<int:id>"}
    assert routes.route({"method": "GET", "path": "/nowhere"}, 200) == UNMATCHED
    assert routes.route({"method": "GET", "path": "/users/8"}, 503) == UNMATCHED  # a 503 before routing
    assert routes.route({"method": "GET", "path": "/x", "aeros.route": "/given"}, 404) == "/given"


def test_the_edge_memo_stays_bounded_under_a_flood_of_paths(monkeypatch):
    from aeros_core import observe

    monkeypatch.setattr(observe, "EDGE_MEMO_LIMIT", 10)
    app = WebServer(__name__)

    @app.route("/users/<int:id>")
    async def user(id: int) -> str:
        return str(id)

    routes = observe.RouteRecorder(app)
    for number in range(100):
        assert routes.route({"method": "GET", "path": f"/users/{number}"}, 200) == "/users/<int:id>"
    assert len(routes.memo) == 10
