"""The supervisor of workers=N: real processes, real signals, every installed backend.

A: workers die with their supervisor. B: an address in use is an error. D: a stuck worker is
replaced. E: the state table. G: recycling.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading

import httpx
import pytest
from supervision import APP_SCRIPT, Load, alive, pid_answers, run_env, wait_for, workers_of

from aeros_core.runner import states
from aeros_core.runner.states import TRANSITIONS
from aeros_core.runner.states import Event as E
from aeros_core.runner.states import State as S
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


# --- D: a stuck worker is replaced -------------------------------------------------------------


def quietly_get(url: str) -> None:
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError:
        pass


@pytest.mark.parametrize("server", BACKENDS)
def test_a_worker_blocked_in_a_view_is_replaced_with_its_stack_logged(script_server, server):
    app = script_server(APP_SCRIPT, env=run_env(server, worker_timeout=2))
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10)
    before = workers_of(app.process.pid)
    threading.Thread(target=quietly_get, args=(url + "/block",), daemon=True).start()
    assert wait_for(lambda: "was stuck" in app.output, 15), app.output
    assert wait_for(lambda: len(workers_of(app.process.pid) - before) == 1, 10), app.output
    (victim,) = before - workers_of(app.process.pid)
    assert re.search(rf"worker \d \(pid {victim}\) stuck: its event loop has not run", app.output), app.output
    assert re.search(r'File ".*server_app\.py", line \d+ in block', app.output), app.output  # the stack
    assert len(pid_answers(url, 100, want=2)) == 2  # the replacement serves


@pytest.mark.serial  # worker_timeout=2 and a 15 s wait for the replacement: not on a loaded machine
@pytest.mark.parametrize("server", BACKENDS)
def test_a_sigstopped_worker_is_replaced(script_server, server):
    app = script_server(APP_SCRIPT, env=run_env(server, worker_timeout=2))
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10)
    before = workers_of(app.process.pid)
    # both answer, so both event loops ticked: a worker stopped before its first tick is still starting
    # (never "stuck"), which a loaded machine made of the second worker when it was stopped at once
    assert wait_for(lambda: pid_answers(url, 20, want=2) == before, 30), app.output
    victim = min(before)
    os.kill(victim, signal.SIGSTOP)
    try:
        assert wait_for(lambda: victim not in workers_of(app.process.pid), 15), app.output
        assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10), app.output
        assert f"(pid {victim}) stuck" in app.output and "cannot be dumped" in app.output, app.output
        assert victim not in pid_answers(url, 100, want=2)
    finally:
        if alive(victim):
            os.kill(victim, signal.SIGCONT)


# --- E: the state table ------------------------------------------------------------------------


def test_every_action_of_the_table_is_a_supervisor_method():
    from aeros_core.runner.workers import Supervisor

    actions = {action for action, _ in TRANSITIONS.values()}
    assert all(callable(getattr(Supervisor, action, None)) for action in actions), actions


@pytest.mark.parametrize(
    "walk",
    [
        # (event, expected state after it); None: the event is ignored in that state
        [
            (E.WORKERS_READY, S.SERVING),
            (E.STOP, S.DRAINING),
            (E.STOP, None),
            (E.DRAIN_DELAY_PASSED, S.DRAINING),
            (E.WORKERS_GONE, S.STOPPED),
        ],
        [
            (E.WORKER_DIED, S.STARTING),
            (E.WORKER_STUCK, S.STARTING),
            (E.GIVE_UP, S.DRAINING),
            (E.GRACE_EXPIRED, S.STOPPED),
        ],
        [
            (E.WORKERS_READY, S.SERVING),
            (E.WORKER_RECYCLE, S.SERVING),
            (E.REPLACEMENT_READY, S.SERVING),
            (E.RELOAD, S.RELOADING),
            (E.RELOAD, None),
            (E.SUCCESSOR_FAILED, S.SERVING),
            (E.RELOAD, S.RELOADING),
            (E.WORKER_DIED, S.RELOADING),
            (E.SUCCESSOR_READY, S.DRAINING),
            (E.WORKER_DIED, None),
            (E.FORCE, S.STOPPED),
        ],
        [(E.WORKERS_READY, S.SERVING), (E.RELOAD, S.RELOADING), (E.STOP, S.DRAINING), (E.WORKERS_GONE, S.STOPPED)],
        # a SIGHUP while the workers start is not lost
        [
            (E.RELOAD, S.RELOADING),
            (E.WORKERS_READY, None),
            (E.SUCCESSOR_READY, S.DRAINING),
            (E.WORKERS_GONE, S.STOPPED),
        ],
    ],
)
def test_the_table_walks_the_supervisors_life(walk):
    state = S.STARTING
    for event, expected in walk:
        transition = states.step(state, event)
        if expected is None:
            assert transition is None, (state, event)
            continue
        assert transition is not None and transition[1] is expected, (state, event, transition)
        state = transition[1]


def test_every_state_but_stopped_can_be_stopped():
    for state in S:
        if state is not S.STOPPED:
            assert states.step(state, E.STOP) or states.step(state, E.FORCE), state


def test_the_deployment_docs_draw_the_table():
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "deployment.md").read_text()
    for line in states.table().splitlines():
        assert line in docs, line


# --- G: recycling ------------------------------------------------------------------------------


@pytest.mark.serial  # every first worker replaced by the time three drained: not on a loaded machine
@pytest.mark.parametrize("keep_alive", [False, True], ids=["new-connections", "keep-alive"])
@pytest.mark.parametrize("server", BACKENDS)
def test_workers_recycled_after_max_requests_under_load_fail_no_request(script_server, server, keep_alive):
    app = script_server(APP_SCRIPT, env=run_env(server, max_requests=150, max_requests_jitter=50))
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10)
    first = workers_of(app.process.pid)
    with Load(url, clients=6, keep_alive=keep_alive) as load:
        # every first worker replaced (a keep-alive client may stay on one worker: the other one
        # recycles later), and a replacement recycled in turn
        assert wait_for(lambda: not first & workers_of(app.process.pid) and app.output.count("drains; pid") >= 3, 90), (
            load.summary(),
            first,
            workers_of(app.process.pid),
            app.output,
        )
    summary = load.summary()
    assert summary["fresh_failed"] == summary["refused"] == summary["other_status"] == 0, summary
    assert re.search(r"worker \d \(pid \d+\) recycled after \d+ requests; replacement pid \d+ starting", app.output)
    assert len(load.pids) > 2


@pytest.mark.parametrize("server", BACKENDS)
def test_a_worker_over_max_worker_memory_is_recycled_gracefully(script_server, server):
    app = script_server(APP_SCRIPT, env=run_env(server, max_worker_memory=150))
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10)
    with Load(url, clients=4) as load:
        grown: set[int] = set()

        def grow() -> bool:
            grown.add(int(httpx.get(url + "/grow", timeout=10).text))
            return "over max_worker_memory" in app.output

        assert wait_for(grow, 60, interval=0.2), app.output
        assert wait_for(lambda: "drains; pid" in app.output, 30), app.output
    summary = load.summary()
    assert summary["fresh_failed"] == summary["refused"] == summary["other_status"] == 0, summary
    (line,) = [line for line in app.output.splitlines() if "over max_worker_memory" in line][:1]
    victim = int(re.search(r"\(pid (\d+)\)", line).group(1))
    assert victim in grown
    assert wait_for(lambda: not alive(victim), 20)


def test_one_process_survives_sighup_and_refuses_recycling_keywords(script_server):
    app = script_server(APP_SCRIPT, env=run_env("hypercorn", workers=1))
    url = app.wait_ready()
    app.signal(signal.SIGHUP)
    assert wait_for(lambda: "SIGHUP ignored" in app.output, 10), app.output
    assert httpx.get(url + "/pid").text == str(app.process.pid)
    refused = script_server(APP_SCRIPT, env=run_env("hypercorn", workers=1, max_requests=10), name="refused.py")
    assert refused.wait(20) != 0
    assert "need workers >= 2" in refused.output
