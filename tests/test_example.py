"""The README's main job: examples/hello/app.py served by aeros with two workers."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello" / "app.py"


def test_example_app_serves_with_two_workers(script_server):
    server = script_server(EXAMPLE.read_text(), env={"PORT": "0", "WORKERS": "2"}, name="app.py")
    url = server.wait_ready()
    home = httpx.get(url + "/")
    assert home.status_code == 200
    assert home.json()["hello"] == "world"
    assert httpx.get(url + "/hello/aeros").text == "Hello, aeros!"
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.output
