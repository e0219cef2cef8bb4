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
import functools
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))

SCOPE_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"wrk"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, br"),
]


X_FOR = b"x-forwarded-for"
FORWARDED_HEADERS = [
    (X_FOR, b"198.51.100.23"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"shop.example"),
    (b"x-request-id", b"5f0c9a3e-8d6b-4a53-9d38-0c2f3e1b7a11"),
]


def new_clients(count: int = 65536) -> Callable[[], list[tuple[bytes, bytes]]]:
    """The forwarding headers of :data:`FORWARDED_HEADERS`, each time with another client address
    in ``X-Forwarded-For`` (a new visitor behind the proxy: more addresses than any cache holds)."""
    rotation = itertools.cycle(
        [(X_FOR, f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}".encode()), *FORWARDED_HEADERS[1:]] for n in range(count)
    )
    return functools.partial(next, rotation)


def new_peers(count: int = 65536) -> Callable[[], tuple[list[tuple[bytes, bytes]], tuple[str, int]]]:
    """No extra headers, and each time another peer address (a client connecting directly)."""
    rotation = itertools.cycle(([], (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 50000)) for n in range(count))
    return functools.partial(next, rotation)


def scope_for(path: str, extra_headers: Any = None) -> dict[str, Any]:
    client = ("127.0.0.1", 50000)
    if callable(extra_headers):  # a new set each request (and maybe a new peer)
        extra_headers = extra_headers()
        if isinstance(extra_headers, tuple):
            extra_headers, client = extra_headers
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
        "headers": [*SCOPE_HEADERS, *(extra_headers or ())],
        "client": client,
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


async def time_requests(app: Any, path: str, count: int, extra_headers: Any = None) -> float:
    send, statuses = counting_send()
    started = time.process_time()
    for _ in range(count):
        await app(scope_for(path, extra_headers), new_receive(), send)
        await asyncio.sleep(0)  # one event-loop turn between requests, as under a server
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

    @app.route("/json")
    async def json_view():
        return {"message": "Hello, World!"}

    return app


def aeros_app(**keywords: Any) -> Any:
    from aeros import WebServer

    app = WebServer(__name__, **keywords)

    @app.route("/hello")
    async def hello():
        return "Hello, World!"

    @app.route("/json")
    async def json_view():
        return {"message": "Hello, World!"}

    return app


def entry(app: Any, **settings_keywords: Any) -> Any:
    """What the runner serves: ``asgi_entry`` (plugin ASGI wrappers) plus the startup announcer."""
    from aeros_core.runner.serve import announce_startup
    from aeros_core.runner.settings import ServerSettings

    settings = ServerSettings(**settings_keywords)
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    return announce_startup(app.asgi_entry(settings), lambda: None)


def edge_only(**settings_keywords: Any) -> Any:
    """The built-in edge wrappers alone (no Quart, no plugin distribution) around the raw ASGI app:
    the difference with the raw row is what the edge features cost, without Quart's noise."""
    from aeros_core.pipeline import AsgiWrapper, collect, compose_asgi
    from aeros_core.runner.serve import announce_startup
    from aeros_core.runner.settings import ServerSettings

    app = aeros_app(disable_plugins=["request", "cache", "compress", "headers", "hello", "uvicorn", "granian"])
    settings = ServerSettings(**settings_keywords)
    wrappers = collect(app.plugin_manager.hook.aeros_asgi_wrapper(app=app, settings=settings), AsgiWrapper)
    return announce_startup(compose_asgi(raw_asgi_app, wrappers), lambda: None)


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


def metrics_around_raw_app() -> Any:
    """The metrics ASGI wrapper of a ``metrics=True`` app around the raw app: what it adds, alone."""
    from aeros_core.runner.settings import ServerSettings

    app = aeros_app(metrics=True)
    settings = ServerSettings(access_log_to_std=False)
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    plugin = next(info.plugin for info in app.plugins if info.name == "metrics")
    return plugin.aeros_asgi_wrapper(app=app, settings=settings).wrap(raw_asgi_app)


def tracing_around_raw_app() -> Any:
    """The tracing ASGI wrapper of a ``tracing=True`` app (its SDK started, spans dropped) around
    the raw app: what it adds, alone."""
    from aeros_core.runner.settings import ServerSettings

    app = aeros_app(tracing={"exporter": dropping_exporter})
    settings = ServerSettings(access_log_to_std=False)
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    plugin = next(info.plugin for info in app.plugins if info.name == "otel")
    plugin.aeros_startup(app=app)
    return plugin.aeros_asgi_wrapper(app=app, settings=settings).wrap(raw_asgi_app)


def dropping_exporter() -> Any:
    """An OpenTelemetry span exporter that sends nothing anywhere (the SDK's cost, not a network's)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Dropping()


def variants(only: list[str] | None = None) -> list[tuple[str, Callable[[], Any]]]:
    import aeros_app as bench_app  # the bench's aeros app: cache + compression when installed

    optional = ["request", "cache", "compress", "headers", "hello", "uvicorn", "metrics", "otel"]
    found = [
        ("raw ASGI app (the floor: two sends)", lambda: raw_asgi_app),
        ("Quart: app.asgi_app", lambda: quart_app().asgi_app),
        ("aeros, only built-in plugins: app.asgi_app", lambda: aeros_app(disable_plugins=optional).asgi_app),
        ("aeros, all but aeros-request: app.asgi_app", lambda: aeros_app(disable_plugins=["request"]).asgi_app),
        ("aeros bare (every installed plugin): app.asgi_app", lambda: aeros_app().asgi_app),
        ("Quart: app.asgi_app, /json (a small dict)", lambda: (quart_app().asgi_app, "/json")),
        ("aeros bare: app.asgi_app, /json (a small dict)", lambda: (aeros_app().asgi_app, "/json")),
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
    # The edge features alone around the raw ASGI app: each row against "edge-only: off".
    bare = {"access_log_to_std": False, "request_id_header": None}
    proxies = {"trusted_proxies": ["127.0.0.1"]}
    found += [
        ("edge-only: off (raw app + announce_startup)", lambda: edge_only(**bare)),
        ("edge-only: request id", lambda: edge_only(**{**bare, "request_id_header": "X-Request-ID"})),
        ("edge-only: trusted_proxies, no forwarding headers", lambda: edge_only(**bare, **proxies)),
        (
            "edge-only: trusted_proxies, X-Forwarded-* + X-Request-ID (off: same headers)",
            lambda: (edge_only(**bare, **proxies), "/hello", FORWARDED_HEADERS),
        ),
        (
            "edge-only: off, with the X-Forwarded-* + X-Request-ID headers",
            lambda: (edge_only(**bare), "/hello", FORWARDED_HEADERS),
        ),
        (
            "edge-only: trusted_proxies, X-Forwarded-For from a never-seen client each request (off: same)",
            lambda: (edge_only(**bare, **proxies), "/hello", new_clients()),
        ),
        (
            "edge-only: off, X-Forwarded-For from a never-seen client each request",
            lambda: (edge_only(**bare), "/hello", new_clients()),
        ),
        (
            "edge-only: trusted_proxies, a direct request from a never-seen peer address each request (off: same)",
            lambda: (edge_only(**bare, trusted_proxies=["192.0.2.0/24"]), "/hello", new_peers()),
        ),
        ("edge-only: off, a never-seen peer address each request", lambda: (edge_only(**bare), "/hello", new_peers())),
        (
            "edge-only: trusted_proxies + request id taken from the proxy",
            lambda: (
                edge_only(**{**bare, "request_id_header": "X-Request-ID"}, **proxies),
                "/hello",
                FORWARDED_HEADERS,
            ),
        ),
        (
            "edge-only: health_path + ready_path set, a normal request",
            lambda: edge_only(**bare, health_path="/healthz", ready_path="/readyz"),
        ),
        ("edge-only: access log, common format", lambda: edge_only(**bare, access_log_file=os.devnull)),
        (
            'edge-only: access log, "json"',
            lambda: edge_only(**bare, access_log_file=os.devnull, access_log_format="json"),
        ),
        (
            "edge-only: access log, template",
            lambda: edge_only(
                **bare, access_log_file=os.devnull, access_log_format='%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)s'
            ),
        ),
    ]
    # The edge features (docs/deployment.md) with Quart, each against the row above it: "edge off" is the floor.
    off = {"access_log_to_std": False, "request_id_header": None}
    found += [
        ("edge off: runner entry, access log off, request_id_header=None", lambda: entry(aeros_app(), **off)),
        (
            "edge off: the same, with X-Forwarded-* + X-Request-ID headers (for the rows that send them)",
            lambda: (entry(aeros_app(), **off), "/hello", FORWARDED_HEADERS),
        ),
        (
            "edge: + request id (generated; the default)",
            lambda: entry(aeros_app(), **{**off, "request_id_header": "X-Request-ID"}),
        ),
        (
            "edge: + trusted_proxies, request without forwarding headers",
            lambda: entry(aeros_app(), **off, trusted_proxies=["127.0.0.1"]),
        ),
        (
            "edge: + trusted_proxies, X-Forwarded-For/-Proto/-Host + X-Request-ID from the proxy",
            lambda: (entry(aeros_app(), **off, trusted_proxies=["127.0.0.1"]), "/hello", FORWARDED_HEADERS),
        ),
        (
            "edge: + trusted_proxies + request id, forwarded headers + X-Request-ID",
            lambda: (
                entry(aeros_app(), **{**off, "request_id_header": "X-Request-ID"}, trusted_proxies=["127.0.0.1"]),
                "/hello",
                FORWARDED_HEADERS,
            ),
        ),
        (
            "edge: + health_path/ready_path set, a normal request",
            lambda: entry(aeros_app(), **off, health_path="/healthz", ready_path="/readyz"),
        ),
        (
            "edge: /healthz answered at the edge",
            lambda: (entry(aeros_app(), **off, health_path="/healthz", ready_path="/readyz"), "/healthz"),
        ),
        (
            "edge: access log on (to a file), common format",
            lambda: entry(aeros_app(), **off, access_log_file=os.devnull),
        ),
        (
            'edge: access log on (to a file), access_log_format="json"',
            lambda: entry(aeros_app(), **off, access_log_file=os.devnull, access_log_format="json"),
        ),
        (
            "edge: access log on (to a file), a gunicorn-like template",
            lambda: entry(
                aeros_app(),
                **off,
                access_log_file=os.devnull,
                access_log_format='%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)s',
            ),
        ),
    ]
    observability = [name for name in ("metrics", "otel") if name in {p.name for p in aeros_app().plugins}]
    if observability:
        found.append(
            (
                "aeros bare, aeros-metrics and aeros-otel disabled: runner entry, access log off",
                lambda: entry(aeros_app(disable_plugins=observability), access_log_to_std=False),
            )
        )
    if "metrics" in observability:
        found.append(("raw ASGI app inside the aeros-metrics wrapper (its cost, alone)", metrics_around_raw_app))
        found.append(
            (
                "aeros + metrics=True: runner entry, access log off",
                lambda: entry(aeros_app(metrics=True), access_log_to_std=False),
            )
        )
    if "otel" in observability:
        found.append(("raw ASGI app inside the aeros-otel wrapper (its cost, alone)", tracing_around_raw_app))
        found.append(
            (
                "aeros + tracing=True (spans batched, then dropped): runner entry, access log off",
                lambda: entry(aeros_app(tracing={"exporter": dropping_exporter}), access_log_to_std=False),
            )
        )
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
    return [(name, make) for name, make in found if not only or any(part in name for part in only)]


async def main_async(count: int, rounds: int, only: list[str] | None = None) -> None:
    """Rounds interleave the variants, so drift of a busy machine spreads over all of them."""
    apps = []
    for name, make in variants(only):
        made = make()
        app, path, extra = (*made, None)[:3] if isinstance(made, tuple) else (made, "/hello", None)
        await lifespan(app)
        await time_requests(app, path, 200, extra)  # warm up (and fill a cache)
        apps.append((name, app, path, extra))
    times: dict[str, list[float]] = {name: [] for name, _, _, _ in apps}
    for _ in range(rounds):
        for name, app, path, extra in apps:
            times[name].append(await time_requests(app, path, count, extra))
    print(f"{count} requests x {rounds} rounds each; µs per request: min and median of the rounds")
    for name, _, _, _ in apps:
        print(f"{min(times[name]):8.1f} {statistics.median(times[name]):8.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", action="append", help="run only the variants whose name contains this text")
    args = parser.parse_args()
    from aeros_core.runner.serve import new_event_loop

    loop = new_event_loop()
    print(f"loop: {type(loop).__module__}")
    try:
        loop.run_until_complete(main_async(args.count, args.rounds, args.only))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
