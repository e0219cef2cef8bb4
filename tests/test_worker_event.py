"""``aeros_worker_event``: the supervisor tells plugins which worker it replaced, and why."""

from __future__ import annotations

import json
import os
import signal

import httpx

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
