"""Cache hits at the ASGI edge vs through Quart: requests/s measured with wrk.

Usage: ``python plugins/aeros_cache/bench_edge.py [seconds] [connections] [server] [rounds]``
(needs ``wrk``; ``server`` is a backend name, ``hypercorn`` by default, or ``uvicorn``).
Two apps served from threads on free ports, each with a cached view whose miss takes 20 ms:
one with the edge on, one with ``app.cache.edge = False``; plus an uncached ``/hello`` and,
for Hypercorn, a plain Quart ``/hello`` and a raw ASGI ``/hello`` (the ceiling). Targets are measured in interleaved rounds (load
from elsewhere hits each alike) and medians reported. Server pinned to core 0, wrk to core 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from aeros import SimpleCache, WebServer


def build(edge: bool) -> Any:
    app: Any = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
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
    out = subprocess.run(
        [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if "Non-2xx" in out or match is None:
        raise RuntimeError(out)
    return float(match.group(1))


def plain_quart() -> object:
    from quart import Quart

    app = Quart(__name__)

    @app.route("/hello")
    async def hello() -> str:
        return "hello"

    return app


async def raw_asgi(scope: dict, receive: object, send: object) -> None:
    """The ceiling: an ASGI app that answers every request with a fixed body."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,  # type: ignore[operator]
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


@contextlib.contextmanager
def on_hypercorn(asgi_app: object) -> Iterator[str]:
    """Serve ``asgi_app`` on plain Hypercorn (no aeros) in a thread; yields its ``/hello`` URL."""
    import socket
    import threading
    import time

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(serve(asgi_app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    )
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/hello"
        for _ in range(100):
            try:
                httpx.get(url).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)


CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    backend = sys.argv[3] if len(sys.argv) > 3 else "hypercorn"
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    if CPUS > 1:  # server on core 0, wrk on core 1
        os.sched_setaffinity(0, {0})
    edge_app, quart_app = build(True), build(False)
    keywords: dict[str, Any] = dict(port=0, access_log_to_std=False, log_level="WARNING", server=backend)
    with contextlib.ExitStack() as stack:
        edge = stack.enter_context(edge_app.run_in_thread(**keywords))
        quart = stack.enter_context(quart_app.run_in_thread(**keywords))
        targets = {
            "cached hit, ASGI edge": edge.url + "/cached",
            "cached hit, through Quart": quart.url + "/cached",
            "uncached /hello (aeros)": edge.url + "/hello",
        }
        if backend == "hypercorn":
            targets["plain Quart /hello (Hypercorn)"] = stack.enter_context(on_hypercorn(plain_quart()))
            targets["raw ASGI /hello (Hypercorn)"] = stack.enter_context(on_hypercorn(raw_asgi))
        for url in targets.values():
            for _ in range(3):  # miss, then fill the edge index
                httpx.get(url).raise_for_status()
        runs: dict[str, list[float]] = {label: [] for label in targets}
        for _ in range(rounds):  # interleaved, so load from elsewhere hits every target alike
            for label, url in targets.items():
                runs[label].append(wrk(url, seconds, connections))
        print(f"  stats edge app {edge_app.cache.stats}, quart app {quart_app.cache.stats}", file=sys.stderr)
    results = {label: statistics.median(rates) for label, rates in runs.items()}
    print(f"server={backend}  wrk -t1 -c{connections} -d{seconds}s, median of {rounds} interleaved runs")
    for label, rate in results.items():
        print(f"{label:32s} {rate:10.0f} req/s   runs: {', '.join(f'{r:.0f}' for r in runs[label])}")
    edge_rate = results["cached hit, ASGI edge"]
    print(f"edge / Quart hit ratio: {edge_rate / results['cached hit, through Quart']:.2f}")
    if "plain Quart /hello (Hypercorn)" in results:
        print(f"edge hit / plain Quart /hello: {edge_rate / results['plain Quart /hello (Hypercorn)']:.2f}")
        print(f"edge hit / raw ASGI /hello: {edge_rate / results['raw ASGI /hello (Hypercorn)']:.2f}")


if __name__ == "__main__":
    main()
