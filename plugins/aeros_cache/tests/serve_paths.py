"""A cached route with a path parameter, SimpleCache with its defaults, served until stdin closes.

Prints the URL. For the memory test: every distinct path is a distinct key and edge-index entry.
"""

from __future__ import annotations

import sys

from aeros import SimpleCache, WebServer

app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])


@app.route("/item/<name>")
@app.cache(timeout=600)
async def item(name: str) -> dict:
    return {"length": len(name)}


if __name__ == "__main__":
    server = app.run_in_thread(port=0, access_log_to_std=False, log_level="WARNING")
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop(timeout=10)
