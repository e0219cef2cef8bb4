"""The README's main job: examples/hello/app.py served by aeros with two workers."""

from __future__ import annotations

import gzip
import signal
from pathlib import Path

import httpx

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello" / "app.py"


def test_example_app_serves_with_two_workers_and_its_plugins(script_server, tmp_path):
    server = script_server(
        EXAMPLE.read_text(), name="app.py", env={"PORT": "0", "WORKERS": "2", "CACHE_DIR": str(tmp_path / "cache")}
    )
    url = server.wait_ready()
    home = httpx.get(url + "/")
    assert home.status_code == 200
    assert home.json()["hello"] == "world"
    assert home.headers["x-served-by"] == "aeros"
    assert home.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(url + "/hello/aeros").text == "Hello, aeros!"

    first = httpx.get(url + "/report", headers={"Accept-Encoding": "gzip"})
    second = httpx.get(url + "/report", headers={"Accept-Encoding": "gzip"})
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert second.headers["content-encoding"] == "gzip"
    assert first.json() == second.json()  # the same answer, whichever worker computed it
    with httpx.stream("GET", url + "/report", headers={"Accept-Encoding": "gzip"}) as wire:
        assert gzip.decompress(b"".join(wire.iter_raw())) == second.content  # gzip on the wire

    assert httpx.get(url + "/search?q=ships").json()["q"] == "ships"
    assert "max-age=86400" in httpx.get(url + "/logo").headers["cache-control"]
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.output
