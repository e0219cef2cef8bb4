#!/usr/bin/env python3
"""Where a routed request's CPU goes, server included: ``.venv/bin/python bench/profile_stack.py``.

For each server (``--server hypercorn uvicorn``) and path (``/hello``, ``/json``), starts a
WebServer app (built-in plugins only, access log off) in a child process pinned to CPU 0, sends
``--requests`` sequential keep-alive requests from this process (pinned to CPU 1), and reports:

- the child's CPU time per request without a profiler (its ``time.process_time`` before and after);
- under cProfile (timed by CPU time), each stage's share of the profiled time, and that share of the unprofiled CPU
  time in µs (cProfile inflates call-heavy code, so treat the µs as an estimate).

Stages are inclusive times of the functions that carry them (``STAGES``); "server" is what is
left outside the app (HTTP parsing, protocol objects, the event loop's Python parts).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import signal
import socket
import subprocess
import sys
import time

#: stage -> the functions carrying it, first found wins (aeros's override, which calls Quart's
#: method when its guard fails, before Quart's own)
STAGES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "  request object from the scope",
        [("aeros_core/asgi.py", "_create_request_from_scope"), ("quart/asgi.py", "_create_request_from_scope")],
    ),
    (
        "  app.handle_request: contexts, dispatch, response (below)",
        [("request_path.py", "handle_request"), ("quart/app.py", "handle_request")],
    ),
    (
        "    URL adapter (bind to the request: part of creating the request context)",
        [("request_path.py", "create_url_adapter"), ("quart/app.py", "create_url_adapter")],
    ),
    (
        "    request context: push (app context, session, match)",
        [("request_path.py", "_push_contexts"), ("quart/ctx.py", "push")],
    ),
    ("      session interface (open / null session)", [("quart/sessions.py", "open_session")]),
    ("      URL matching", [("request_path.py", "_match_request"), ("quart/ctx.py", "match_request")]),
    (
        "    before-request steps (preprocess_request)",
        [("request_path.py", "preprocess_request"), ("quart/app.py", "preprocess_request")],
    ),
    (
        "    view call (dispatch_request)",
        [("aeros_core/app.py", "dispatch_request"), ("quart/app.py", "dispatch_request")],
    ),
    ("    response object (make_response)", [("request_path.py", "make_response"), ("quart/app.py", "make_response")]),
    ("      JSON (provider.response)", [("fast_json.py", "response"), ("json/provider.py", "response")]),
    (
        "    after-request steps (process_response)",
        [("aeros_core/app.py", "process_response"), ("quart/app.py", "process_response")],
    ),
    ("    signals (blinker send_async)", [("blinker/base.py", "send_async")]),
    ("    teardown + context pop", [("request_path.py", "_pop_contexts"), ("quart/ctx.py", "pop")]),
    (
        "  send: headers encoded, ASGI messages, the server's send",
        [("aeros_core/asgi.py", "_send_response"), ("quart/asgi.py", "_send_response")],
    ),
]
#: the app's part: these stages do not overlap and cover it but for a little glue
APP_STAGES = (0, 1, len(STAGES) - 1)


def serve(server: str, port: int) -> None:
    """Child: serve /hello and /json until SIGINT, profiling when AEROS_PROFILE is set."""
    from aeros import WebServer

    app = WebServer(__name__, disable_plugins=["cache", "compress", "headers", "request", "hello"])

    @app.route("/hello")
    async def hello() -> str:
        return "Hello, World!"

    @app.route("/json")
    async def json_view() -> dict:
        return {"message": "Hello, World!", "items": [1, 2, 3]}

    @app.route("/cpu")
    async def cpu() -> str:
        return repr(time.process_time())

    profile_to = os.environ.get("AEROS_PROFILE")
    profiler = cProfile.Profile(time.process_time) if profile_to else None  # CPU time, not wall
    if profiler:
        profiler.enable()
    try:
        app.run(port=port, server=server, access_log_to_std=False, log_level="WARNING")
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile_to)


def drive(port: int, path: str, count: int) -> bytes:
    """Sequential keep-alive GETs; reads each response to its Content-Length; the last body."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: profile\r\n\r\n".encode()
        buffer = b""
        for _ in range(count):
            sock.sendall(request)
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(buffer) < length:
                buffer += sock.recv(65536)
            body, buffer = buffer[:length], buffer[length:]
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_child(server: str, path: str, count: int, profile_to: str | None) -> float:
    """The child's CPU µs per request of ``path`` (its /cpu before and after the requests)."""
    port = free_port()
    env = {**os.environ, **({"AEROS_PROFILE": profile_to} if profile_to else {})}
    command = ["taskset", "-c", "0", sys.executable, __file__, "--child", server, str(port)]
    child = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError(f"{server} did not start") from None
                time.sleep(0.05)
        drive(port, path, 200)  # warm-up
        before = float(drive(port, "/cpu", 1))
        drive(port, path, count)
        after = float(drive(port, "/cpu", 1))
    finally:
        child.send_signal(signal.SIGINT)
        child.wait(30)
    return (after - before) / count * 1e6


def inclusive(stats: pstats.Stats, functions: list[tuple[str, str]]) -> float:
    """Inclusive time of the first of ``functions`` that ran (all of its entries)."""
    for suffix, function in functions:
        total = 0.0
        for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
            if filename.endswith(suffix) and name == function:
                total += cumulative
        if total:
            return total
    return 0.0


def report(server: str, path: str, count: int) -> None:
    per_request = run_child(server, path, count, None)
    profile_to = f"/tmp/aeros-profile-{server}-{path.strip('/')}.prof"
    run_child(server, path, count, profile_to)
    stats = pstats.Stats(profile_to)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n{server} {path}: {per_request:.0f} µs CPU per request (server process, no profiler)")
    app_share = sum(inclusive(stats, STAGES[index][1]) for index in APP_STAGES) / total
    print(f"{'share':>6} {'~µs':>6}  stage")
    print(f"{(1 - app_share) * 100:5.0f}% {(1 - app_share) * per_request:6.1f}  server: HTTP parsing, protocol, loop")
    print(f"{app_share * 100:5.0f}% {app_share * per_request:6.1f}  app: request object, handle_request, send")
    for label, functions in STAGES:
        share = inclusive(stats, functions) / total
        print(f"{share * 100:5.0f}% {share * per_request:6.1f}  {label}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", nargs="+", default=["hypercorn", "uvicorn"])
    parser.add_argument("--path", nargs="+", default=["/hello", "/json"])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    for server in args.server:
        for path in args.path:
            report(server, path, args.requests)


if __name__ == "__main__":
    main()
