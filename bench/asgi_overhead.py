#!/usr/bin/env python3
"""What aeros adds per request, without a server or a network: ``.venv/bin/python bench/asgi_overhead.py``.

Calls each ASGI app directly (``await app(scope, receive, send)``) for a GET of /hello in one
event loop (uvloop when installed, as the runner uses), and prints the median time per request
(and the minimum) of several rounds. CPU time of this process (time.process_time), so other work on a shared machine matters little; the difference between two rows
is what one layer costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))

SCOPE_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"wrk"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, br"),
]


def scope_for(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(SCOPE_HEADERS),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


def new_receive() -> Callable[[], Any]:
    """The request body once, then wait (as a server does until the client disconnects)."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.get_running_loop().create_future()  # cancelled when the response is done
        return {"type": "http.disconnect"}

    return receive


def counting_send() -> tuple[Callable[[dict], Any], list[int]]:
    statuses: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    return send, statuses


async def lifespan(app: Any) -> None:
    """Run the app's lifespan startup (before_serving, plugin startup) once."""
    queue: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    done = asyncio.Event()

    async def send(message: dict) -> None:
        if message["type"].startswith("lifespan.startup"):
            done.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, queue.get, send))
    await asyncio.wait_for(done.wait(), 10)
    task.cancel()


async def time_requests(app: Any, path: str, count: int) -> float:
    send, statuses = counting_send()
    started = time.process_time()
    for _ in range(count):
        await app(scope_for(path), new_receive(), send)
    elapsed = (time.process_time() - started) / count * 1e6
    if set(statuses) != {200}:
        raise RuntimeError(f"{path}: statuses {set(statuses)}")
    return elapsed


def quart_app() -> Any:
    from quart import Quart

    app = Quart(__name__)

    @app.route("/hello")
    async def hello():
        return "Hello, World!"

    return app


def aeros_app(**keywords: Any) -> Any:
    from aeros import WebServer

    app = WebServer(__name__, **keywords)

    @app.route("/hello")
    async def hello():
        return "Hello, World!"

    return app


def entry(app: Any, **settings_keywords: Any) -> Any:
    """What the runner serves: ``asgi_entry`` (plugin ASGI wrappers) plus the startup announcer."""
    from aeros_core.runner.serve import announce_startup
    from aeros_core.runner.settings import ServerSettings

    settings = ServerSettings(**settings_keywords)
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    return announce_startup(app.asgi_entry(settings), lambda: None)


def counted_entry(app: Any, **settings_keywords: Any) -> Any:
    """The runner entry of a worker with ``max_requests``: the request counter wraps the app."""
    from aeros_core.runner.heartbeat import RequestCounter
    from aeros_core.runner.serve import announce_startup
    from aeros_core.runner.settings import ServerSettings

    settings = ServerSettings(**settings_keywords)
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    return announce_startup(RequestCounter().wrap(app.asgi_entry(settings)), lambda: None)


async def raw_asgi_app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, World!"})


def variants() -> list[tuple[str, Callable[[], Any]]]:
    import aeros_app as bench_app  # the bench's aeros app: cache + compression when installed

    optional = ["request", "cache", "compress", "headers", "hello", "uvicorn"]
    found = [
        ("raw ASGI app (the floor: two sends)", lambda: raw_asgi_app),
        ("Quart: app.asgi_app", lambda: quart_app().asgi_app),
        ("aeros, only built-in plugins: app.asgi_app", lambda: aeros_app(disable_plugins=optional).asgi_app),
        ("aeros, all but aeros-request: app.asgi_app", lambda: aeros_app(disable_plugins=["request"]).asgi_app),
        ("aeros bare (every installed plugin): app.asgi_app", lambda: aeros_app().asgi_app),
        ("aeros bare: runner entry, access log off", lambda: entry(aeros_app(), access_log_to_std=False)),
        (
            "aeros bare: runner entry, access log on (to a file)",
            lambda: entry(aeros_app(), access_log_to_std=False, access_log_file=os.devnull),
        ),
        (
            "aeros bare: runner entry, soft_limit=100",
            lambda: entry(aeros_app(), access_log_to_std=False, soft_limit=100),
        ),
        (
            "aeros bare: runner entry, max_requests (request counter)",
            lambda: counted_entry(aeros_app(), access_log_to_std=False),
        ),
    ]
    if bench_app.HAS_CACHE:
        from aeros import SimpleCache

        found.append(
            (
                "aeros + cache=SimpleCache(): runner entry, /hello (not a cached view)",
                lambda: entry(aeros_app(cache=SimpleCache()), access_log_to_std=False),
            )
        )
    if bench_app.HAS_COMPRESSION:
        from aeros import Br, Gzip

        found.append(
            (
                "aeros + compression=[Br(), Gzip()]: runner entry, /hello (too small to compress)",
                lambda: entry(aeros_app(compression=[Br(), Gzip()]), access_log_to_std=False),
            )
        )
    if bench_app.HAS_CACHE or bench_app.HAS_COMPRESSION:
        found.append(
            (
                "bench aeros_app (cache+compression): runner entry, /hello",
                lambda: entry(bench_app.app, access_log_to_std=False),
            )
        )
    if bench_app.HAS_CACHE:
        found.append(
            (
                "bench aeros_app: runner entry, /cached (a cache hit)",
                lambda: (entry(bench_app.app, access_log_to_std=False), "/cached"),
            )
        )
    return found


async def main_async(count: int, rounds: int) -> None:
    """Rounds interleave the variants, so drift of a busy machine spreads over all of them."""
    apps = []
    for name, make in variants():
        made = make()
        app, path = made if isinstance(made, tuple) else (made, "/hello")
        await lifespan(app)
        await time_requests(app, path, 200)  # warm up (and fill a cache)
        apps.append((name, app, path))
    times: dict[str, list[float]] = {name: [] for name, _, _ in apps}
    for _ in range(rounds):
        for name, app, path in apps:
            times[name].append(await time_requests(app, path, count))
    print(f"{count} requests x {rounds} rounds each; µs per request: min and median of the rounds")
    for name, _, _ in apps:
        print(f"{min(times[name]):8.1f} {statistics.median(times[name]):8.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from aeros_core.runner.serve import new_event_loop

    loop = new_event_loop()
    print(f"loop: {type(loop).__module__}")
    try:
        loop.run_until_complete(main_async(args.count, args.rounds))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
