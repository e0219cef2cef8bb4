"""H: where to listen. bind=[HOST:PORT, [::1]:PORT, unix:/path, fd://N], systemd socket activation
(LISTEN_FDS/LISTEN_PID), IPv6; on every installed backend, or refused at start by the backend."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from supervision import APP_SCRIPT, run_env, wait_for

from aeros_core.runner.sockets import Address
from aeros_core.testing import installed_backends

BACKENDS = installed_backends()
SEVERAL_ADDRESSES = [b for b in BACKENDS if b != "granian"]  # granian serves one address


def get(url: str, uds: str | None = None) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=uds) if uds else None, timeout=5) as client:
        return client.get(url, headers={"Connection": "close"})


def running_on(output: str) -> list[str]:
    return re.findall(r"Running on (\S+)", output)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("server", SEVERAL_ADDRESSES)
def test_bind_serves_ipv4_ipv6_and_a_unix_socket_at_once(script_server, server, workers, tmp_path: Path):
    path = tmp_path / "app.sock"
    bind = ["127.0.0.1:0", "[::1]:0", f"unix:{path}"]
    app = script_server(APP_SCRIPT, env=run_env(server, workers=workers, bind=bind))
    app.wait_ready()
    assert wait_for(lambda: len(running_on(app.output)) == 3, 10), app.output
    ipv4, ipv6, unix = running_on(app.output)
    assert ipv4.startswith("http://127.0.0.1:") and ipv6.startswith("http://[::1]:"), app.output
    assert unix == f"http+unix://{path}"
    for url in (ipv4, ipv6):
        assert wait_for(lambda url=url: get(url + "/pid").status_code == 200, 10)
    assert get("http://localhost/pid", uds=str(path)).status_code == 200
    app.signal(signal.SIGTERM)
    assert app.wait(20) == 0, app.output


@pytest.mark.parametrize("bind", ["[::1]:0", "unix"])
@pytest.mark.parametrize("server", BACKENDS)
def test_bind_one_ipv6_or_unix_address(script_server, server, bind, tmp_path: Path):
    path = tmp_path / "one.sock"
    address = f"unix:{path}" if bind == "unix" else bind
    app = script_server(APP_SCRIPT, env=run_env(server, bind=[address]))
    if bind == "unix":
        assert wait_for(lambda: path.exists() and _answers(uds=str(path)), 20), app.output
    else:
        url = app.wait_ready()
        assert url.startswith("http://[::1]:")
    app.signal(signal.SIGTERM)
    assert app.wait(20) == 0, app.output


def _answers(url: str = "http://localhost", uds: str | None = None) -> bool:
    try:
        return get(url + "/pid", uds=uds).status_code == 200
    except httpx.HTTPError:
        return False


def test_granian_refuses_several_addresses_at_start(script_server):
    if "granian" not in BACKENDS:
        pytest.skip("granian is not installed")
    app = script_server(APP_SCRIPT, env=run_env("granian", bind=["127.0.0.1:0", "[::1]:0"]))
    assert app.wait(20) != 0
    assert "granian" in app.output and "bind=" in app.output, app.output
    assert "Running on" not in app.output


def test_bind_addresses_are_checked():
    assert Address.parse("[::1]:8000") == Address("tcp", host="::1", port=8000)
    assert Address.parse("0.0.0.0:80") == Address("tcp", host="0.0.0.0", port=80)
    assert Address.parse("unix:/run/app.sock") == Address("unix", path="/run/app.sock")
    assert Address.parse("fd://3") == Address("fd", fd=3)
    for bad in ("::1:8000", "localhost", "fd://x", "unix:", "host:port"):
        with pytest.raises(ValueError, match="bind"):
            Address.parse(bad)


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def start_with_socket(script: Path, sock: socket.socket, env: dict[str, str], systemd: bool) -> subprocess.Popen:
    """Start ``script`` with ``sock`` inherited: as fd://N, or as systemd passes it (fd 3, LISTEN_*)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    if not systemd:
        return subprocess.Popen(
            [sys.executable, str(script)], env=environment, pass_fds=[sock.fileno()], cwd=script.parent
        )
    as_systemd_does = (
        f"import os, sys; fd = {sock.fileno()}; os.dup2(fd, 3); fd != 3 and os.close(fd); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
        "os.execv(sys.executable, [sys.executable, sys.argv[1]])"
    )
    command = [sys.executable, "-c", as_systemd_does, str(script)]
    return subprocess.Popen(command, env=environment, pass_fds=[sock.fileno()], cwd=script.parent)


@pytest.mark.parametrize("systemd", [False, True], ids=["fd", "LISTEN_FDS"])
@pytest.mark.parametrize("server", BACKENDS)
def test_an_inherited_socket_is_served(server, systemd, tmp_path: Path):
    script = tmp_path / "inherit_app.py"
    script.write_text(APP_SCRIPT)
    sock = listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    keywords = {} if systemd else {"bind": [f"fd://{sock.fileno()}"]}
    process = start_with_socket(script, sock, run_env(server, **keywords), systemd)
    sock.close()  # the server holds it now
    try:
        assert wait_for(lambda: _answers(url), 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_run_in_thread_serves_every_bind_address(serve, tmp_path: Path):
    from aeros import WebServer

    app = WebServer(__name__)

    @app.route("/")
    async def index():
        return "ok"

    path = tmp_path / "thread.sock"
    server = serve(app, bind=["127.0.0.1:0", f"unix:{path}"])
    assert get(server.url + "/").text == "ok"
    assert get("http://localhost/", uds=str(path)).text == "ok"


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate not installed")
def test_systemd_socket_activate_starts_the_server_on_its_socket(tmp_path: Path):
    script = tmp_path / "activated_app.py"
    script.write_text(APP_SCRIPT)
    probe = listening_socket()
    port = probe.getsockname()[1]
    probe.close()  # a free port for systemd-socket-activate (it binds it again below)
    process = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            f"127.0.0.1:{port}",
            "-E",
            "RUN",
            "-E",
            "PYTHONUNBUFFERED",
            sys.executable,
            str(script),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1", **run_env("hypercorn")},
        cwd=tmp_path,
    )
    try:
        assert wait_for(lambda: _answers(f"http://127.0.0.1:{port}"), 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
