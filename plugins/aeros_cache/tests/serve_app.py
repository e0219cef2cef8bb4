"""An app with one cached view, served on a free port until stdin closes (for multi-process tests).

Usage: ``python serve_app.py fs:DIRECTORY`` or ``python serve_app.py redis:URL``; prints the URL.
"""

from __future__ import annotations

import os
import sys

from aeros import FileSystemCache, RedisCache, WebServer


def build(spec: str) -> WebServer:
    kind, _, where = spec.partition(":")
    backend = FileSystemCache(where) if kind == "fs" else RedisCache(url=where)
    app = WebServer(__name__, cache=backend)
    calls = {"n": 0}

    @app.route("/pid")
    @app.cache(timeout=60)
    async def pid() -> dict:
        calls["n"] += 1
        return {"pid": os.getpid(), "calls": calls["n"]}

    return app


if __name__ == "__main__":
    server = build(sys.argv[1]).run_in_thread(port=0, access_log_to_std=False, log_level="WARNING")
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop(timeout=10)
