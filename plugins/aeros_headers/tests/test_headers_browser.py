"""A real headless Chromium fetching cross-origin from a page on one aeros server to another.

Origin A (``http://127.0.0.1:<portA>``) is allowed by the API server's CORS policy, origin C
is not. Chromium is driven by its own ``--dump-dom``: the page writes each fetch's outcome
into the DOM, and ``--virtual-time-budget`` keeps the page alive until the fetches settle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from quart import current_app

from aeros import WebServer

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

PAGE = """<!doctype html>
<html><head><title>cors probe</title></head>
<body><pre id="out">pending</pre>
<script>
(async () => {
  const api = %(api)s;
  const probes = [
    ["simple", {}],
    ["preflighted", {method: "PUT", headers: {"X-Token": "t", "Content-Type": "application/json"}, body: "{}"}],
  ];
  const results = [];
  for (const [name, options] of probes) {
    try {
      const response = await fetch(api + "/data", options);
      results.push(name + "=ok:" + response.status + ":" + (await response.text()));
    } catch (error) {
      results.push(name + "=blocked:" + error.name);
    }
  }
  document.getElementById("out").textContent = "RESULT[" + results.join(";") + "]";
})();
</script></body></html>
"""


def chromium_binary() -> str | None:
    explicit = os.environ.get("AEROS_CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def page_app() -> WebServer:
    """A page whose script fetches from ``app.config["API_URL"]`` (set once the API listens)."""
    app = WebServer(__name__)

    @app.route("/")
    async def page():
        api = json.dumps(current_app.config["API_URL"])
        return PAGE % {"api": api}, 200, {"Content-Type": "text/html; charset=utf-8"}

    return app


def run_chromium(binary: str, url: str, profile: Path) -> str:
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
        "--metrics-recording-only",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    match = re.search(r"RESULT\[(.*?)\]", done.stdout)
    assert match, (
        f"chromium exited {done.returncode} without a result; stdout={done.stdout[-2000:]!r} stderr={done.stderr[-2000:]!r}"
    )
    return match.group(1)


def test_browser_cross_origin_fetch_allowed_and_blocked(serve, tmp_path):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (install Debian's 'chromium' package, or set AEROS_CHROMIUM)")

    # The page servers start first: their origins go into the API's CORS policy.
    hits: dict[str, int] = {}
    lock = threading.Lock()
    allowed_page = serve(page_app())
    blocked_page = serve(page_app())
    allowed_origin = f"http://127.0.0.1:{allowed_page.port}"
    blocked_origin = f"http://127.0.0.1:{blocked_page.port}"

    api = WebServer(
        __name__, cors={"origins": [allowed_origin], "methods": ["GET", "PUT"], "headers": ["x-token", "content-type"]}
    )

    @api.route("/data", methods=["GET", "PUT"])
    async def data():
        from quart import request

        key = f"{request.method} {request.headers.get('origin')}"
        with lock:
            hits[key] = hits.get(key, 0) + 1
        return f"{request.method.lower()}-data"

    api_server = serve(api)
    for server in (allowed_page, blocked_page):
        server.app.config["API_URL"] = api_server.url

    allowed = run_chromium(binary, allowed_page.url + "/", tmp_path / "profile-a")
    blocked = run_chromium(binary, blocked_page.url + "/", tmp_path / "profile-c")

    assert allowed == "simple=ok:200:get-data;preflighted=ok:200:put-data"
    assert blocked == "simple=blocked:TypeError;preflighted=blocked:TypeError"
    # The disallowed origin's simple GET reached the server (the browser only hid the answer);
    # its PUT never did: the preflight was refused.
    assert hits.get(f"GET {blocked_origin}") == 1
    assert f"PUT {blocked_origin}" not in hits
    assert hits.get(f"PUT {allowed_origin}") == 1
