"""The plugin template in examples/aeros-hello-plugin, installed as a user would install it.

``./dev`` installs every ``examples/*/pyproject.toml`` editable; these tests check that the
installed distribution is discovered through its entry point, that its hooks run on a real
server, and that it can be turned off. They keep the template from going stale.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from aeros import UnknownOptionError, WebServer

DIST = "aeros-hello-plugin"
ENTRY_POINT = "hello"


@pytest.fixture(autouse=True)
def installed() -> None:
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        pytest.fail(f"{DIST} is not installed: run ./dev setup or pip install -e examples/aeros-hello-plugin")


def aeros_command() -> list[str]:
    script = Path(sys.executable).parent / "aeros"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aeros_core.cli"]


def test_aeros_plugins_json_lists_the_template() -> None:
    done = subprocess.run([*aeros_command(), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows[ENTRY_POINT] == {
        "name": ENTRY_POINT,
        "distribution": DIST,
        "version": metadata.version(DIST),
        "builtin": False,
        "status": "ok",
    }
    assert rows["hypercorn"]["builtin"] is True


def test_aeros_plugins_text_output_has_one_line_for_the_template() -> None:
    done = subprocess.run([*aeros_command(), "plugins"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [ENTRY_POINT, DIST, metadata.version(DIST)] in lines


def test_app_plugins_and_from_aeros_import() -> None:
    app = WebServer(__name__)
    info = next(info for info in app.plugins if info.name == ENTRY_POINT)
    assert (info.distribution, info.version, info.builtin) == (DIST, metadata.version(DIST), False)
    from aeros import HelloPlugin  # found through aeros_hello.__all__

    assert isinstance(info.plugin, HelloPlugin)


def test_hooks_run_on_a_real_server(serve) -> None:
    app = WebServer(__name__, hello_greeting="Salut")

    @app.route("/")
    async def home() -> dict[str, bool]:
        return {"home": True}

    server = serve(app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        greeted = client.get("/hello-plugin/Grace")  # route added in aeros_app_init
        assert greeted.json()["greeting"] == "Salut, Grace!"
        assert greeted.json()["serving"] == 1  # aeros_startup ran in the serving thread
        assert client.get("/").headers["x-hello"] == "Salut"  # aeros_after_response
        assert client.get("/hello-plugin/ping").text == "pong\n"  # aeros_asgi_wrapper


@pytest.mark.parametrize("name", [ENTRY_POINT, DIST])
def test_disable_plugins_turns_it_off(serve, name: str) -> None:
    app = WebServer(__name__, disable_plugins=[name])
    assert "hello_greeting" in WebServer(__name__, hello_greeting="Hi").options
    assert ENTRY_POINT not in [info.name for info in app.plugins]
    assert "hello_greeting" not in app.options
    server = serve(app)
    assert httpx.get(server.url + "/hello-plugin/x").status_code == 404
    assert httpx.get(server.url + "/hello-plugin/ping").status_code == 404
    assert "x-hello" not in httpx.get(server.url + "/hello-plugin/x").headers
    with pytest.raises(UnknownOptionError, match="hello_greeting"):
        WebServer(__name__, disable_plugins=[name], hello_greeting="Hi")


def test_aeros_disable_plugins_environment_variable(serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEROS_DISABLE_PLUGINS", f"cache, {ENTRY_POINT}")
    app = WebServer(__name__, cache=None)  # None: an absent first-party plugin's keyword is accepted
    names = [info.name for info in app.plugins]
    assert ENTRY_POINT not in names and "cache" not in names
    server = serve(app)
    assert httpx.get(server.url + "/hello-plugin/ping").status_code == 404
    with pytest.raises(UnknownOptionError, match="hello_greeting"):
        WebServer(__name__, hello_greeting="Hi")
    monkeypatch.delenv("AEROS_DISABLE_PLUGINS")
    assert ENTRY_POINT in [info.name for info in WebServer(__name__, hello_greeting="Hi").plugins]


def test_aeros_trace_plugins_logs_each_hook_call(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("AEROS_TRACE_PLUGINS", "1")
    with caplog.at_level(logging.DEBUG, logger="aeros.trace"):
        app = WebServer(__name__, hello_greeting="Hi")
        app.request_pipeline  # builds the chains: aeros_before_request, aeros_after_response
    traced = [record.getMessage() for record in caplog.records if record.name == "aeros.trace"]
    assert any("aeros_app_init" in line and ENTRY_POINT in line for line in traced), traced
    assert any("aeros_after_response" in line and ENTRY_POINT in line for line in traced), traced
    caplog.clear()
    monkeypatch.delenv("AEROS_TRACE_PLUGINS")
    WebServer(__name__, hello_greeting="Hi").request_pipeline
    assert not [record for record in caplog.records if record.name == "aeros.trace"]
