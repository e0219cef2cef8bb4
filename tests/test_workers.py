"""workers=N: real processes, real signals. The app lives in the script's __main__.

Every test runs on each installed server backend: the runner's guarantees hold for all of them.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from aeros_core.testing import installed_backends

WORKER_SCRIPT = """
import asyncio, os
from aeros import WebServer

app = WebServer(__name__)

@app.route("/pid")
async def pid():
    return str(os.getpid())

@app.route("/slow")
async def slow():
    print("slow request started", flush=True)
    await asyncio.sleep(1)
    return "slept " + str(os.getpid())

@app.route("/hang")
async def hang():
    print("hanging request started", flush=True)
    await asyncio.sleep(30)
    return "never"

if __name__ == "__main__":
    app.run(port=0, workers=int(os.environ.get("WORKERS", "2")), graceful_timeout=5,
            access_log_to_std=False, server=os.environ.get("SERVER", "hypercorn"))
    print("parent exiting cleanly", flush=True)
"""


@pytest.fixture(params=installed_backends())
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment for WORKER_SCRIPT selecting one server backend."""
    return {"SERVER": request.param}


def pids_seen(url: str, want: int, attempts: int = 200) -> set[str]:
    """Distinct worker PIDs answering /pid, using a fresh connection per request."""
    seen: set[str] = set()
    for _ in range(attempts):
        seen.add(httpx.get(url + "/pid", timeout=5, headers={"Connection": "close"}).text)
        if len(seen) >= want:
            break
    return seen


def worker_pids(parent_pid: int) -> set[int]:
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent_pid and fields[0] != "Z":
            children.add(int(entry))
    return children


def quietly_get(url: str) -> None:
    """A request whose failure is expected (the server is forced down under it)."""
    try:
        httpx.get(url, timeout=15)
    except httpx.HTTPError:
        pass


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_two_workers_answer_from_two_pids(script_server, backend):
    server = script_server(WORKER_SCRIPT, env=backend)
    url = server.wait_ready()
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2, 10)
    seen = pids_seen(url, 2)
    assert len(seen) == 2, seen
    assert {int(p) for p in seen} == worker_pids(server.process.pid)


def test_workers_share_the_load(script_server, backend):
    server = script_server(WORKER_SCRIPT, env=backend)
    url = server.wait_ready()
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2, 10)
    counts: dict[str, int] = {}
    for _ in range(100):
        pid = httpx.get(url + "/pid", timeout=5, headers={"Connection": "close"}).text
        counts[pid] = counts.get(pid, 0) + 1
    assert len(counts) == 2 and min(counts.values()) >= 15, counts


def test_a_killed_worker_is_replaced_within_two_seconds(script_server, backend):
    server = script_server(WORKER_SCRIPT, env=backend)
    url = server.wait_ready()
    assert wait_for(lambda: len(worker_pids(server.process.pid)) == 2, 10)
    before = worker_pids(server.process.pid)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    assert wait_for(
        lambda: len(worker_pids(server.process.pid) - before) == 1 and victim not in worker_pids(server.process.pid),
        2.0,
    ), server.output
    assert time.monotonic() - killed_at < 2.0
    # service continued throughout, and the replacement serves too
    assert httpx.get(url + "/pid", timeout=5).status_code == 200
    assert wait_for(lambda: len(pids_seen(url, 2, attempts=20)) == 2, 10)
    assert "replaced by pid" in server.output


def test_sigterm_lets_the_request_in_flight_finish_and_exits_zero(script_server, backend):
    server = script_server(WORKER_SCRIPT, env=backend)
    url = server.wait_ready()
    result = {}

    def slow_request():
        result["response"] = httpx.get(url + "/slow", timeout=15)

    client = threading.Thread(target=slow_request)
    client.start()
    assert wait_for(lambda: "slow request started" in server.output, 10), server.output
    server.signal(signal.SIGTERM)
    client.join(15)
    assert server.wait(20) == 0, server.output
    assert result["response"].status_code == 200
    assert result["response"].text.startswith("slept")
    assert "parent exiting cleanly" in server.output


def test_sigint_is_graceful_and_a_second_one_forces(script_server, backend):
    server = script_server(WORKER_SCRIPT, env=backend)
    url = server.wait_ready()
    threading.Thread(target=quietly_get, args=(url + "/hang",), daemon=True).start()
    assert wait_for(lambda: "hanging request started" in server.output, 10), server.output
    server.signal(signal.SIGINT)
    # the workers are told to drain (graceful_timeout=5): the request in flight holds them
    assert wait_for(lambda: "SIGTERM received: finishing requests in flight" in server.output, 10), server.output
    assert server.process.poll() is None  # still draining the hanging request
    server.signal(signal.SIGINT)
    assert server.wait(5) != 0
    assert "parent exiting cleanly" not in server.output


def test_spawn_start_method_serves_the_app_from_main(script_server, backend):
    server = script_server(WORKER_SCRIPT, env={**backend, "AEROS_START_METHOD": "spawn"})
    url = server.wait_ready(timeout=40)
    assert len(pids_seen(url, 2)) == 2
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.output


def test_single_process_run_exits_zero_on_sigterm(script_server, backend):
    server = script_server(WORKER_SCRIPT, env={**backend, "WORKERS": "1"})
    url = server.wait_ready()
    assert httpx.get(url + "/pid").text == str(server.process.pid)
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.output
    assert "parent exiting cleanly" in server.output
