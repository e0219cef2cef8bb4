"""The `aeros` command, `from aeros import X`, aeros.misc, run_server, reload."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

import aeros
from aeros import WebServer
from aeros.misc import jsonify, sync_to_async

AEROS = os.path.join(os.path.dirname(sys.executable), "aeros")


def test_aeros_plugins_lists_every_discovered_plugin():
    result = subprocess.run([AEROS, "plugins"], capture_output=True, text=True, timeout=60, check=True)
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "(built-in)" in lines["hypercorn"]
    assert "aeros-cache" in lines["cache"]


def test_aeros_plugins_json_matches_app_plugins():
    result = subprocess.run([AEROS, "plugins", "--json"], capture_output=True, text=True, timeout=60, check=True)
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for info in WebServer(__name__).plugins:
        assert rows[info.name]["distribution"] == info.distribution
        assert rows[info.name]["version"] == info.version
        assert rows[info.name]["builtin"] == info.builtin


def test_aeros_run_serves_module_app(script_server, tmp_path):
    (tmp_path / "cli_app.py").write_text(
        textwrap.dedent("""
        import os
        from aeros import WebServer
        app = WebServer(__name__)

        @app.route("/pid")
        async def pid():
            return str(os.getpid())
    """)
    )
    access_log = tmp_path / "access.log"
    server = script_server(
        "",
        name="unused.py",
        args=[
            "-m",
            "aeros_core.cli",
            "run",
            "cli_app:app",
            "--port",
            "0",
            "--workers",
            "2",
            "--access-log",
            str(access_log),
        ],
    )
    url = server.wait_ready()
    assert httpx.get(url + "/pid").status_code == 200
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.output
    assert '"GET /pid HTTP/1.1" 200' in access_log.read_text()


def test_facade_exports_installed_plugin_names():
    pytest.importorskip("aeros_cache")
    import aeros_cache

    if "SimpleCache" not in getattr(aeros_cache, "__all__", ()):
        pytest.skip("aeros-cache does not export SimpleCache yet")
    assert aeros.SimpleCache is aeros_cache.SimpleCache


def test_facade_names_the_extra_for_a_missing_plugin():
    code = "import sys; sys.modules['aeros_compress'] = None\nfrom aeros import Gzip"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "pip install 'aeros[compress]'" in result.stderr


def test_facade_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        aeros.NoSuchThing  # noqa: B018


async def test_sync_to_async_runs_in_a_thread_without_blocking_the_loop():
    main_thread = threading.get_ident()

    @sync_to_async
    def blocking(value):
        time.sleep(0.2)
        return value, threading.get_ident()

    ticks = 0

    async def ticker():
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    (value, thread), _ = await asyncio.gather(blocking("done"), ticker())
    assert value == "done"
    assert thread != main_thread
    assert ticks == 10  # the loop kept running while the function slept


async def test_jsonify_from_misc():
    app = WebServer(__name__)
    async with app.app_context():
        response = jsonify({"a": 1})
    assert await response.get_json() == {"a": 1}


RUN_SERVER_SCRIPT = """
import os
from aeros import WebServer
app = WebServer(__name__)

@app.route("/pid")
async def pid():
    return str(os.getpid())

if __name__ == "__main__":
    app.run_server(port=0, access_log_to_std=False)
"""


def test_run_server_works_with_a_deprecation_warning(script_server):
    server = script_server(RUN_SERVER_SCRIPT, env={"PYTHONWARNINGS": "always::DeprecationWarning"})
    url = server.wait_ready()
    assert httpx.get(url + "/pid").status_code == 200
    assert "DeprecationWarning: run_server() is deprecated" in server.output


RELOAD_SCRIPT = """
import os
from aeros import WebServer
app = WebServer(__name__)

@app.route("/pid")
async def pid():
    return "VERSION-1 " + str(os.getpid())

if __name__ == "__main__":
    app.run(port=int(os.environ["PORT"]), reload=True, access_log_to_std=False, graceful_timeout=1)
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_reload_restarts_on_source_change(script_server):
    port = free_port()
    server = script_server(RELOAD_SCRIPT, env={"PORT": str(port)})
    url = server.wait_ready()
    assert httpx.get(url + "/pid").text.startswith("VERSION-1")
    before = server.path.stat().st_mtime
    server.path.write_text(server.path.read_text().replace("VERSION-1", "VERSION-2"))
    os.utime(server.path, (before + 2, before + 2))  # changed, whatever the file system's mtime granularity
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        try:
            text = httpx.get(url + "/pid", timeout=2).text
            if text.startswith("VERSION-2"):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    assert text.startswith("VERSION-2"), server.output
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.output
