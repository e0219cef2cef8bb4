"""The supervisor of workers=N: real processes, real signals, every installed backend.

A: workers die with their supervisor. B: an address in use is an error. D: a stuck worker is
replaced. E: the state table. G: recycling.
"""

from __future__ import annotations

import signal
import socket

import httpx
import pytest
from supervision import APP_SCRIPT, alive, pid_answers, run_env, wait_for, workers_of

from aeros_core.testing import installed_backends

BACKENDS = installed_backends()


# --- A: workers die with their supervisor ------------------------------------------------------


@pytest.mark.parametrize("watch", ["prctl", "pipe"])
@pytest.mark.parametrize("server", BACKENDS)
def test_workers_exit_when_the_supervisor_is_killed(script_server, server, watch):
    env = run_env(server)
    if watch == "pipe":
        env["AEROS_PARENT_WATCH"] = "pipe"  # the mechanism used where prctl does not exist
    app = script_server(APP_SCRIPT, env=env)
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10), app.output
    workers = workers_of(app.process.pid)
    assert len(pid_answers(url, 200, want=2)) == 2
    app.signal(signal.SIGKILL)
    app.wait(5)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 5), [p for p in workers if alive(p)]
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/pid", timeout=2)


# --- B: one address, one server ---------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("server", BACKENDS)
def test_a_second_server_on_the_same_address_fails(script_server, server, workers):
    first = script_server(APP_SCRIPT, env=run_env(server, workers=workers), name="first.py")
    url = first.wait_ready()
    port = int(url.rsplit(":", 1)[1])
    first_pids = workers_of(first.process.pid) or {first.process.pid}
    assert wait_for(lambda: len(workers_of(first.process.pid) or {first.process.pid}) == workers, 10)
    first_pids = workers_of(first.process.pid) if workers > 1 else {first.process.pid}
    second = script_server(APP_SCRIPT, env=run_env(server, workers=workers, port=port), name="second.py")
    assert second.wait(20) != 0
    assert "address in use" in second.output, second.output
    assert "parent exiting cleanly" not in second.output
    assert pid_answers(url, 50) <= first_pids


def test_a_port_taken_by_another_program_is_refused(script_server):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that allows sharing
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        app = script_server(APP_SCRIPT, env=run_env("hypercorn", port=holder.getsockname()[1]))
        assert app.wait(20) != 0
        assert "address in use" in app.output, app.output
    finally:
        holder.close()
