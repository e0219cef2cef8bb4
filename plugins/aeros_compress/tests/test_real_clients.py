"""Real clients decoding what the plugin sends: curl ``--compressed`` and headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Response

from aeros import AsgiWrapper, Br, Gzip, Stage, WebServer, Zstd, hookimpl

EVENT_1 = b"data: first\n\n"
EVENT_2 = b"data: second\n\n"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>compressed page</title></head>
<body><pre id="out">pending</pre>
%(padding)s
<script>
(async () => {
  const results = [];
  try {
    const data = await (await fetch("/data")).json();
    results.push("json=" + data.items.length);
  } catch (error) { results.push("json=" + error.name); }
  await new Promise((resolve) => {
    const source = new EventSource("/events");
    source.onmessage = (event) => { results.push("event=" + event.data); source.close(); resolve(); };
    source.onerror = () => { results.push("event=error"); source.close(); resolve(); };
  });
  document.getElementById("out").textContent = "RESULT[" + results.join(";") + "]";
})();
</script></body></html>
"""


class Recorder:
    """A plugin at OBSERVE (outside compression) noting what each response was sent as."""

    def __init__(self) -> None:
        self.sent: dict[str, str | None] = {}

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper:
        def wrap(inner: Any) -> Any:
            async def recording(scope: dict, receive: Any, send: Any) -> None:
                async def noting(message: dict) -> None:
                    if message["type"] == "http.response.start":
                        encoding = dict(message.get("headers") or ()).get(b"content-encoding")
                        self.sent[scope["path"]] = encoding.decode() if encoding else None
                    await send(message)

                await inner(scope, receive, noting)

            return recording

        return AsgiWrapper(Stage.OBSERVE, wrap)


def make_app(doc: bytes, recorder: Recorder | None = None) -> WebServer:
    app = WebServer(
        __name__, compression=[Br(), Zstd(), Gzip()], disable_plugins=["hello"], plugins=[recorder] if recorder else ()
    )
    gates: dict[str, asyncio.Event] = {}

    def gate() -> asyncio.Event:
        return gates.setdefault("gate", asyncio.Event())

    @app.route("/")
    async def page() -> Response:
        padding = "<p>" + "A compressed page. " * 100 + "</p>"
        return Response(PAGE % {"padding": padding}, content_type="text/html; charset=utf-8")

    @app.route("/data")
    async def data() -> Response:
        return Response(doc, content_type="application/json")

    @app.route("/events")
    async def events() -> Any:
        async def stream() -> AsyncIterator[bytes]:
            yield EVENT_1
            try:
                await asyncio.wait_for(gate().wait(), float(app.config.get("GATE_SECONDS", 10)))
            except asyncio.TimeoutError:
                pass
            yield EVENT_2

        return stream(), 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

    @app.route("/release")
    async def release() -> str:
        gate().set()
        return "released"

    return app


# --- curl ------------------------------------------------------------------------------------


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed")
    return path


def test_curl_compressed_reads_the_page(serve: Any, doc: bytes) -> None:
    binary = curl()
    server = serve(make_app(doc))
    done = subprocess.run(
        [binary, "--compressed", "-sS", "--max-time", "10", "-D", "-", server.url + "/data"],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert re.search(rb"(?im)^content-encoding: (gzip|br|zstd)\r?$", head), head
    assert re.search(rb"(?im)^vary: accept-encoding\r?$", head), head
    assert body == doc  # curl decoded it


def test_curl_reads_the_first_event_while_the_stream_is_open(serve: Any) -> None:
    binary = curl()
    server = serve(make_app(b"{}"))
    process = subprocess.Popen(
        [binary, "--compressed", "-sS", "-N", "--max-time", "15", server.url + "/events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        received = b""
        deadline = time.monotonic() + 8
        assert process.stdout is not None
        while EVENT_1 not in received and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                piece = os.read(process.stdout.fileno(), 4096)
                if not piece:
                    break
                received += piece
        assert received == EVENT_1  # decoded by curl, and the server still holds event 2
        assert httpx.get(server.url + "/release", timeout=5).text == "released"
        rest, errors = process.communicate(timeout=15)
        assert process.returncode == 0, errors
        assert received + rest == EVENT_1 + EVENT_2
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- a browser -------------------------------------------------------------------------------


def chromium() -> str:
    explicit = os.environ.get("AEROS_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium binary (install Debian's 'chromium' package, or set AEROS_CHROMIUM)")


def test_browser_reads_compressed_page_json_and_events(serve: Any, doc: bytes, tmp_path: Path) -> None:
    binary = chromium()
    recorder = Recorder()
    app = make_app(doc, recorder)
    app.config["GATE_SECONDS"] = 1  # the browser closes the stream itself after event 1
    server = serve(app)
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-proxy-server",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        server.url + "/",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    match = re.search(r"RESULT\[(.*?)\]", done.stdout)
    assert match, f"chromium exited {done.returncode}; stdout={done.stdout[-1500:]!r} stderr={done.stderr[-1500:]!r}"
    assert match.group(1) == f"json={len(json.loads(doc)['items'])};event=first"
    # every one of them really went out compressed (Chromium offers gzip on plain http)
    for path in ("/", "/data", "/events"):
        assert recorder.sent.get(path) in ("gzip", "br", "zstd"), recorder.sent
