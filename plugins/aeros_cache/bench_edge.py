"""Cache hits at the ASGI edge vs through Quart: requests/s measured with wrk.

Usage: ``python plugins/aeros_cache/bench_edge.py [seconds] [connections] [server]`` (needs ``wrk``;
``server`` is a backend name such as ``hypercorn``, the default, or ``uvicorn``).
Serves one app at a time from a thread on a free port: a cached view whose miss takes 20 ms,
with the edge on, then off (``app.cache.edge = False``), and an uncached ``/hello`` for scale.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import httpx

from aeros import SimpleCache, WebServer


def build(edge: bool) -> WebServer:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    app.cache.edge = edge

    @app.route("/cached")
    @app.cache(timeout=3600)
    async def cached() -> dict:
        await asyncio.sleep(0.02)
        return {"hello": "world"}

    @app.route("/hello")
    async def hello() -> str:
        return "hello"

    return app


def wrk(url: str, seconds: int, connections: int) -> float:
    pin = ["taskset", "-c", "1"] if CPUS > 1 else []
    out = subprocess.run([*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url], capture_output=True,
                         text=True, timeout=seconds + 30).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if "Non-2xx" in out or match is None:
        raise RuntimeError(out)
    return float(match.group(1))


CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def main() -> None:
    if CPUS > 1:  # server on core 0, wrk on core 1
        os.sched_setaffinity(0, {0})
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    backend = sys.argv[3] if len(sys.argv) > 3 else "hypercorn"
    results = {}
    for label, edge, path in (("cached hit, ASGI edge", True, "/cached"),
                              ("cached hit, through Quart", False, "/cached"),
                              ("uncached /hello (Quart)", True, "/hello")):
        app = build(edge)
        with app.run_in_thread(port=0, access_log_to_std=False, log_level="WARNING", server=backend) as server:
            for _ in range(3):  # miss, then fill the edge index
                httpx.get(server.url + path).raise_for_status()
            results[label] = wrk(server.url + path, seconds, connections)
            if path == "/cached":
                print(f"  {label}: stats {app.cache.stats}", file=sys.stderr)
    for label, rate in results.items():
        print(f"{label:30s} {rate:10.0f} req/s")
    print(f"edge / Quart hit ratio: {results['cached hit, ASGI edge'] / results['cached hit, through Quart']:.2f}")


if __name__ == "__main__":
    main()
