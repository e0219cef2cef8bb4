"""F: SIGHUP restarts the whole server on the same sockets, under load, without a failed request.

Real processes: the old supervisor runs its command line again with the listening sockets
inherited; once the new workers serve, the old ones drain and the old supervisor exits 0.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from supervision import APP_SCRIPT, Load, alive, run_env, wait_for, workers_of

from aeros_core.testing import installed_backends

BACKENDS = installed_backends()


def successor_of(output: str) -> int:
    match = re.search(r"new supervisor pid (\d+)", output)
    assert match, output
    return int(match.group(1))


def stop(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not alive(pid), 30)


@pytest.mark.parametrize("keep_alive", [False, True], ids=["new-connections", "keep-alive"])
@pytest.mark.parametrize("server", BACKENDS)
def test_sighup_under_load_fails_no_request_and_new_workers_answer(script_server, server, keep_alive):
    app = script_server(APP_SCRIPT, env=run_env(server))
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10)
    old_workers = workers_of(app.process.pid)
    new_supervisor = 0
    try:
        with Load(url, clients=8, keep_alive=keep_alive) as load:
            assert wait_for(lambda: load.ok >= 200, 30), load.summary()
            app.signal(signal.SIGHUP)
            assert app.wait(30) == 0, app.output  # the old supervisor drained and left
            new_supervisor = successor_of(app.output)
            new_workers = workers_of(new_supervisor)
            assert len(new_workers) == 2 and not new_workers & old_workers
            answered = load.ok
            assert wait_for(lambda: load.ok >= answered + 200, 30), load.summary()
        summary = load.summary()
        # reused_failed: kept-alive connections the old workers closed while idle; the client sends
        # its next request on a new connection, as HTTP clients do (counted in fresh_failed if it fails).
        assert summary["fresh_failed"] == summary["refused"] == 0, summary
        assert summary["other_status"] == 0, summary
        assert load.pids & new_workers, "the new workers answered"
        assert not any(alive(pid) for pid in old_workers)
    finally:
        if new_supervisor:
            stop(new_supervisor)


def test_sighup_restarts_aeros_run_with_new_code(script_server, tmp_path: Path):
    (tmp_path / "cli_app.py").write_text(
        "import os\nfrom aeros import WebServer\napp = WebServer(__name__)\n\n"
        "@app.route('/pid')\nasync def pid():\n    return str(os.getpid())\n\n"
        "@app.route('/version')\nasync def version():\n    return 'one'\n"
    )
    app = script_server(
        "", name="unused.py", args=["-m", "aeros_core.cli", "run", "cli_app:app", "--port", "0", "--workers", "2"]
    )
    url = app.wait_ready()
    import httpx

    assert httpx.get(url + "/version").text == "one"
    (tmp_path / "cli_app.py").write_text((tmp_path / "cli_app.py").read_text().replace("'one'", "'two'"))
    app.signal(signal.SIGHUP)
    new_supervisor = 0
    try:
        assert app.wait(30) == 0, app.output
        new_supervisor = successor_of(app.output)
        assert httpx.get(url + "/version").text == "two"
    finally:
        if new_supervisor:
            stop(new_supervisor)
