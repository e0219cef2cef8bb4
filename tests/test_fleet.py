"""Issue 13, the fleet on one machine, real parts only: three aeros instances (``workers=2`` each,
``max_requests=500``) behind a real HAProxy started from docs/deployment.md's configuration
(health-checking ``ready_path``), sharing a real redis-server, under constant load through HAProxy:
a rolling SIGTERM restart, a killed instance, a rolling SIGHUP restart and the recycling of workers
fail no request;
the access log (JSON) shows the real client and the request id HAProxy set, with X-Forwarded-For
and with the PROXY protocol; a client that talks to an instance directly cannot spoof its address,
host or request id.

Failures are counted by the client (tests/supervision.py's ``Load``): a non-200 answer, a
connection closed or reset under a request, a request without an answer within 3 s, a refused
connection. HAProxy answers 502/503/504 for what it could not hide.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from supervision import Load, alive, workers_of
from test_deployment import (
    CLIENT,
    ROOT,
    UUID,
    Tool,
    block,
    client,
    free_port,
    log_records,
    needs_haproxy,
    substitute,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.serial, needs_haproxy]  # serial: its 3 s per request under load

MAX_REQUESTS = 500
DRAIN_DELAY = 2


def _redis_process() -> type:
    """The real redis-server of the aeros-cache tests (plugins/aeros_cache/tests/conftest.py)."""
    path = ROOT / "plugins" / "aeros_cache" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("aeros_cache_test_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RedisProcess


FLEET_APP = """
import asyncio
import os
from aeros import RedisCache, WebServer, request_id
from quart import request, url_for

app = WebServer(__name__, cache=RedisCache(url=os.environ["REDIS_URL"]), disable_plugins=["hello"])

@app.route("/pid")
async def pid():
    return str(os.getpid())

@app.route("/cached")
@app.cache(timeout=60)
async def cached():
    return "cached by " + str(os.getpid())

@app.route("/slow")
async def slow():
    await asyncio.sleep(0.2)  # in flight when its worker is told to stop
    return "slept in " + str(os.getpid())

@app.route("/who")
async def who():
    return {"addr": request.remote_addr, "url": url_for("who", _external=True), "rid": request_id(),
            "pid": os.getpid()}

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), workers=2, trusted_proxies=["127.0.0.1"],
            health_path="/healthz", ready_path="/readyz", drain_delay=float(os.environ["DRAIN"]),
            graceful_timeout=5, access_log_format="json", access_log_to_std=False,
            access_log_file=os.environ["ACCESS_LOG"], max_requests=int(os.environ["MAX_REQUESTS"]),
            proxy_protocol=os.environ["PROXY_PROTOCOL"] == "1")
"""


@dataclass
class Instance:
    """One aeros instance on a fixed port; ``supervisor`` follows SIGHUP's successor."""

    number: int
    port: int
    log: Path
    server: Any = None  # the ScriptServer started last (its output holds its successors' logs too)
    supervisor: int = 0
    outputs: list[Any] = field(default_factory=list)

    def output(self) -> str:
        return "".join(server.output for server in self.outputs)

    def recycled(self) -> int:
        return len(re.findall(r"recycled after \d+ requests", self.output()))


def fleet_haproxy_config(ports: list[int], port: int, proxy_protocol: bool = False) -> str:
    """The documented configuration, with the test's addresses and faster health checks (drain_delay=2)."""
    config = block("haproxy", "frontend www")
    if proxy_protocol:  # the documented backend that sends the PROXY protocol
        config = config[: config.index("\nbackend shop") + 1] + block("haproxy", "send-proxy-v2")
    config = substitute(config, "bind :80", f"bind 127.0.0.1:{port}")
    # a check answers within 1 s (the documented inter 1s), even on a busy machine
    config = substitute(
        config,
        "    default-server inter 1s fall 2 rise 2",
        "    timeout check 1s\n    default-server inter 200ms fall 2 rise 2",
    )
    servers = "\n    ".join(f"server app{n + 1} 127.0.0.1:{p} check" for n, p in enumerate(ports))
    return substitute(config, "server app1 127.0.0.1:8000 check", servers)


@contextmanager
def running_fleet(script_server, tmp_path: Path, proxy_protocol: bool = False) -> Iterator[Any]:
    redis = _redis_process()(tmp_path)
    redis.start()
    instances = [Instance(n, free_port(), tmp_path / f"access-{n}.log") for n in range(3)]
    haproxy: Tool | None = None

    def start(instance: Instance) -> None:
        env = {
            "REDIS_URL": redis.url,
            "PORT": str(instance.port),
            "DRAIN": str(DRAIN_DELAY),
            "ACCESS_LOG": str(instance.log),
            "MAX_REQUESTS": str(MAX_REQUESTS),
            "PROXY_PROTOCOL": "1" if proxy_protocol else "0",
        }
        instance.server = script_server(FLEET_APP, env=env, name="fleet_app.py")
        instance.outputs.append(instance.server)
        if proxy_protocol:  # a request without a PROXY header is closed: the announcement only
            wait_for(lambda: instance.server.url, "the instance to announce its address")
        else:
            instance.server.wait_ready()
        instance.supervisor = instance.server.process.pid

    try:
        for instance in instances:
            start(instance)
        path = tmp_path / "haproxy.cfg"
        path.write_text(fleet_haproxy_config([i.port for i in instances], free_port(), proxy_protocol))
        port = int(re.search(r"bind 127\.0\.0\.1:(\d+)", path.read_text()).group(1))
        haproxy = Tool(["haproxy", "-db", "-f", str(path)], port, tmp_path / "haproxy.out")
        yield instances, haproxy, (start, redis)
    finally:
        if haproxy is not None:
            haproxy.stop()
        for instance in instances:  # SIGHUP's successors are not the test's children (even a failed test's)
            successors = {int(pid) for pid in re.findall(r"new supervisor pid (\d+)", instance.output())}
            for pid in successors | {instance.supervisor}:
                if pid and alive(pid):
                    os.kill(pid, signal.SIGTERM)
                    wait_for(lambda pid=pid: not alive(pid), "a supervisor to stop", 30)
        redis.kill()


@pytest.fixture
def fleet(script_server, tmp_path: Path) -> Iterator[tuple[list[Instance], Tool, Any]]:
    with running_fleet(script_server, tmp_path) as running:
        yield running


def failed(load: Load) -> int:
    return load.other_status + load.fresh_failed + load.reused_failed + load.refused


def sent(load: Load) -> int:
    return load.ok + failed(load)


TAKEN_OUT_AND_BACK = [("DOWN", "Layer7 wrong status"), ("UP", "Layer7 check passed")]


def haproxy_events(haproxy: Tool) -> list[tuple[str, str, str]]:
    """HAProxy's health-check verdicts, in order: (server, "DOWN"|"UP", reason)."""
    return re.findall(r"Server shop/(app\d) is (DOWN|UP), reason: ([^,]+),", haproxy.log.read_text())


def instance_of(instances: list[Instance], pid: int) -> Instance:
    (instance,) = [i for i in instances if pid in workers_of(i.supervisor)]
    return instance


def logged(log: Path, request_id: str) -> dict[str, Any]:
    """The access-log line of that request (JSON)."""
    return wait_for(
        lambda: next((r for r in log_records(log) if r["request_id"] == request_id), None), "the access-log line"
    )


def serving(instance: Instance, load: Load) -> set[int]:
    """The instance's current workers that answered through HAProxy."""
    return workers_of(instance.supervisor) & load.pids


@pytest.mark.timeout(240)  # about 40 s; 60 s under coverage
def test_fleet_behind_haproxy_fails_no_request(fleet, capsys):
    instances, haproxy, (start, redis) = fleet
    figures: list[str] = []
    with (
        Load(haproxy.url, clients=5, path="/pid") as load,
        Load(haproxy.url, clients=1, path="/cached") as cached,
        Load(haproxy.url, clients=2, path="/slow") as slow,
    ):
        wait_for(lambda: all(serving(i, load) for i in instances), "every instance to answer through HAProxy")

        # 1. rolling restart: SIGTERM (drain_delay=2: /readyz 503, HAProxy takes it out, then it closes)
        mark = sent(load)
        for instance in instances:
            instance.server.signal(signal.SIGTERM)
            assert instance.server.wait(30) == 0, instance.output()
            start(instance)
            answered = wait_for(lambda i=instance: serving(i, load), "the restarted instance to answer", 30)
            assert answered
        # HAProxy took each out because /readyz said 503 (drain_delay), not because it refused connections
        events = haproxy_events(haproxy)
        # the first verdict on each is DOWN by the 503 of /readyz; a restarting instance may flap after that
        # (a worker still starting answers 503, the new process binds a moment after the old one closed)
        first_down = {}
        last = {}
        for server, state, reason in events:
            if state == "DOWN":
                first_down.setdefault(server, reason)
            last[server] = (state, reason)
        taken_out, back = TAKEN_OUT_AND_BACK
        assert first_down == {f"app{n}": taken_out[1] for n in (1, 2, 3)}, haproxy.log.read_text()
        assert last == {f"app{n}": back for n in (1, 2, 3)}, haproxy.log.read_text()
        seen = len(events)
        figures.append(f"SIGTERM x3: {sent(load) - mark} requests, {failed(load)} failed {load.summary()}")
        assert failed(load) == 0, load.summary()

        # 1b. a crash: an instance's supervisor and workers killed, then started again; until the health
        # check takes it out, HAProxy retries on another server (docs: retries, retry-on, redispatch)
        mark = sent(load)
        crashed = instances[0]
        workers = workers_of(crashed.supervisor)
        crashed.server.signal(signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        crashed.server.wait(30)
        wait_for(lambda: not any(alive(pid) for pid in workers), "the killed workers to be gone", 30)
        start(crashed)
        wait_for(lambda: serving(crashed, load), "the restarted instance to answer", 30)
        # HAProxy took it out (a refused connection, or the restarted instance's 503 while it starts)
        states = [(server, state) for server, state, _ in haproxy_events(haproxy)[seen:]]
        assert ("app1", "DOWN") in states and states[-1] == ("app1", "UP"), haproxy.log.read_text()
        assert {server for server, _ in states} == {"app1"}, haproxy.log.read_text()
        seen += len(states)
        figures.append(
            f"SIGKILL instance 0 (+{len(workers)} workers): {sent(load) - mark} requests, {failed(load)} failed"
        )
        assert failed(load) == 0, load.summary()

        # 2. rolling restart: SIGHUP (the supervisor runs its command line again on the same sockets)
        mark = sent(load)
        for instance in instances:
            before = workers_of(instance.supervisor)
            old = instance.supervisor
            instance.server.signal(signal.SIGHUP)
            assert instance.server.wait(30) == 0, instance.output()  # the old supervisor drained and left
            match = re.search(r"new supervisor pid (\d+) serves", instance.output())
            assert match, instance.output()
            instance.supervisor = int(match.group(1))
            after = wait_for(lambda i=instance: serving(i, load), "the new workers to answer", 30)
            assert not after & before and instance.supervisor != old
            assert not any(alive(pid) for pid in before)
            figures.append(f"SIGHUP instance {instance.number}: workers {sorted(before)} -> {sorted(after)}")
        down = [event for event in haproxy_events(haproxy)[seen:] if event[1] == "DOWN"]
        figures.append(f"SIGHUP x3: HAProxy marked {len(down)} server(s) down")
        figures.append(f"SIGHUP x3: {sent(load) - mark} requests, {failed(load)} failed")
        assert failed(load) == 0, load.summary()

        # 3. max_requests=500: every instance recycles a worker while the load runs
        mark, recycled = sent(load), [i.recycled() for i in instances]
        wait_for(
            lambda: all(i.recycled() > r for i, r in zip(instances, recycled)),
            "every instance to recycle a worker",
            60,
        )
        figures.append(
            f"max_requests: {sent(load) - mark} requests, recycled {[i.recycled() - r for i, r in zip(instances, recycled)]}"
            f" (whole run: {[i.recycled() for i in instances]}), {failed(load)} failed"
        )
    figures.append(f"whole run: /pid {load.summary()}, /cached {cached.summary()}, /slow {slow.summary()}")
    assert failed(load) == failed(cached) == failed(slow) == 0, (load.summary(), cached.summary(), slow.summary())
    assert slow.ok > 0
    assert cached.ok > 0 and int(redis.command("DBSIZE")[1:].split()[0]) > 0, "the cached route used Redis"

    # 4. the access log: the real client and HAProxy's request id, on every instance
    checked = 0
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil", "X-Request-ID": "chosen-by-client"}
    with client() as http:
        for _ in range(6):  # round robin: two on each instance
            response = http.get(haproxy.url + "/who", headers=spoof)
            answer = response.json()
            assert answer["addr"] == CLIENT and UUID.fullmatch(answer["rid"]), answer
            assert response.headers["x-request-id"] == answer["rid"]
            assert answer["url"] == f"{haproxy.url}/who", answer
            instance = instance_of(instances, answer["pid"])
            record = logged(instance.log, answer["rid"])
            assert record["client"] == CLIENT and record["path"] == "/who" and record["status"] == 200
            checked += 1
        # directly, from an untrusted address: the forwarding headers and the request id change nothing
        direct = f"http://127.0.0.1:{instances[0].port}"
        response = http.get(direct + "/who", headers=spoof)
        answer = response.json()
        assert answer["addr"] == CLIENT and answer["url"] == f"{direct}/who", answer
        assert answer["rid"] != "chosen-by-client" and response.headers["x-request-id"] == answer["rid"]
        record = logged(instances[0].log, answer["rid"])
        assert record["client"] == CLIENT
        checked += 1
    lines = sum(len(log_records(i.log)) for i in instances)
    figures.append(f"access log: {checked} lines checked (of {lines} written)")
    with capsys.disabled():
        print("\nfleet figures:\n  " + "\n  ".join(figures))


def test_fleet_behind_haproxy_with_the_proxy_protocol(script_server, tmp_path):
    """The documented send-proxy-v2 backend in front of the three instances (``proxy_protocol=True``):
    every instance logs the real client and HAProxy's request id."""
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Request-ID": "chosen-by-client"}
    with running_fleet(script_server, tmp_path, proxy_protocol=True) as (instances, haproxy, _), client() as http:
        wait_for(lambda: http.get(haproxy.url + "/who").status_code == 200, "HAProxy to route")
        seen = set()
        for _ in range(6):  # round robin: two on each instance
            response = http.get(haproxy.url + "/who", headers=spoof)
            answer = response.json()
            assert answer["addr"] == CLIENT and UUID.fullmatch(answer["rid"]), answer
            assert response.headers["x-request-id"] == answer["rid"]
            instance = instance_of(instances, answer["pid"])
            record = logged(instance.log, answer["rid"])
            assert record["client"] == CLIENT and record["path"] == "/who" and record["status"] == 200
            seen.add(instance.number)
        assert seen == {0, 1, 2}
        assert haproxy_events(haproxy) == [], haproxy.log.read_text()  # the checks pass with a PROXY header
