"""C: the shutdown order, runner side, on every installed backend (real processes, real signals).

SIGTERM -> (ready_path 503) -> after drain_delay every listening socket closed, new handshakes
refused rather than accepted and reset -> requests in flight finish -> exit 0.
"""

from __future__ import annotations

import signal
import socket
import threading

import pytest
from supervision import APP_SCRIPT, Load, read_response, run_env, wait_for, workers_of

from aeros_core.testing import installed_backends

BACKENDS = installed_backends()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("server", BACKENDS)
def test_sigterm_under_keep_alive_load_resets_no_accepted_connection(script_server, server, workers):
    app = script_server(APP_SCRIPT, env=run_env(server, workers=workers))
    url = app.wait_ready()
    if workers > 1:
        assert wait_for(lambda: len(workers_of(app.process.pid)) == workers, 10)
    with Load(url, clients=16) as load:
        assert wait_for(lambda: load.ok >= 300, 30), load.summary()
        app.signal(signal.SIGTERM)
        assert app.wait(30) == 0, app.output
    summary = load.summary()
    # Every connection the server accepted got its answer; the others were refused.
    assert summary["fresh_failed"] == 0, summary
    assert summary["other_status"] == 0, summary


@pytest.mark.parametrize("server", BACKENDS)
def test_sigterm_with_twenty_slow_requests_in_flight_answers_all(script_server, server):
    app = script_server(APP_SCRIPT, env={**run_env(server, graceful_timeout=10), "SLOW": "2"})
    url = app.wait_ready()
    assert wait_for(lambda: len(workers_of(app.process.pid)) == 2, 10)
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    written = threading.Barrier(21, timeout=20)
    answers: list[tuple[int, str] | BaseException] = []

    def slow_request() -> None:
        with socket.create_connection((host, int(port)), timeout=20) as conn:
            conn.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
            written.wait()
            try:
                status, _, body = read_response(conn)
                answers.append((status, body))
            except (OSError, EOFError) as error:
                answers.append(error)

    clients = [threading.Thread(target=slow_request) for _ in range(20)]
    for client in clients:
        client.start()
    written.wait()  # all 20 requests written
    app.signal(signal.SIGTERM)
    for client in clients:
        client.join(30)
    assert app.wait(30) == 0, app.output
    assert len(answers) == 20
    assert all(isinstance(a, tuple) and a[0] == 200 and a[1].startswith("slept") for a in answers), answers
