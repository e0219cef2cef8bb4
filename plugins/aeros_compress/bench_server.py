"""Requests per second of compressed responses through a real server, to measure the variant LRU.

Run from the repository root (needs ``wrk`` and ``taskset``; the server is pinned to CPU 0, wrk to
CPU 1, one worker, Hypercorn, access log off; medians of ``--runs`` runs)::

    .venv/bin/python plugins/aeros_compress/bench_server.py [--duration 5] [--runs 3]

Paths served (the 60 KB JSON document of ``bench_codecs.py``):

- ``/big``: a plain view, no ETag: compressed on every request;
- ``/big-etag``: the same with a strong ETag: compressed once, then served from the LRU;
- ``/cached``: ``@app.cache(timeout=60)``: after the first request a cache hit answered at the
  ASGI edge (the cache gives its entries strong ETags), compressed from the LRU.

Each row is one server configuration; ``compression_cache=0`` turns the LRU off.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFIGS = {
    # name: (compression expression, compression_cache, Accept-Encoding wrk sends)
    "br4 (default), LRU on": ("[Br(), Gzip()]", None, "gzip, br"),
    "br4 (default), LRU off": ("[Br(), Gzip()]", 0, "gzip, br"),
    "gzip2 isal, LRU on": ("[Br(), Gzip()]", None, "gzip"),
    "gzip2 isal, LRU off": ("[Br(), Gzip()]", 0, "gzip"),
    "gzip2 stdlib zlib, LRU off": ("[Gzip(backend='zlib')]", 0, "gzip"),
    "gzip6 stdlib zlib, LRU off": ("[Gzip(level=6, backend='zlib')]", 0, "gzip"),
    "no compression": ("None", None, "gzip, br"),
}
PATHS = ("/big", "/big-etag", "/cached")


def serve() -> None:
    """The server process: an aeros app configured from the environment."""
    sys.path.insert(0, str(HERE))
    from bench_codecs import sample_json
    from quart import Response

    from aeros import Br, Gzip, SimpleCache, WebServer, Zstd  # noqa: F401 (used by eval)

    doc = sample_json()
    options = {"compression": eval(os.environ["COMPRESSION"])}  # a literal from CONFIGS above
    if os.environ.get("CACHE_SIZE"):
        options["compression_cache"] = int(os.environ["CACHE_SIZE"])
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"], **options)

    @app.route("/big")
    async def big() -> Response:
        return Response(doc, content_type="application/json")

    @app.route("/big-etag")
    async def big_etag() -> Response:
        return Response(doc, content_type="application/json", headers={"ETag": '"doc-v1"'})

    @app.route("/cached")
    @app.cache(timeout=60)
    async def cached() -> Response:
        return Response(doc, content_type="application/json")

    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), access_log_to_std=False, log_level="WARNING")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, accept: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers={"Accept-Encoding": accept})
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.headers.get("Content-Encoding") or "identity"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer")


def cpu_seconds(root: int) -> float:
    """User + system CPU time of process ``root`` and its descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    family = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return sum(times.get(pid, 0.0) for pid in family)


def wrk(url: str, accept: str, duration: float, server_pid: int) -> tuple[float, float]:
    """(requests per second, server CPU µs per request) of one wrk run."""
    command = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        "-c64",
        f"-d{max(1, round(duration))}s",
        "-H",
        f"Accept-Encoding: {accept}",
        url,
    ]
    before = cpu_seconds(server_pid)
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30).stdout
    used = cpu_seconds(server_pid) - before
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if not rate or not total:
        raise RuntimeError(output)
    return float(rate.group(1)), used / int(total.group(1)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    results: dict[str, dict[str, list[tuple[float, float]]]] = {name: {p: [] for p in PATHS} for name in CONFIGS}
    encodings: dict[str, str] = {}
    for run in range(args.runs):
        for name, (compression, cache_size, accept) in CONFIGS.items():
            port = free_port()
            env = {**os.environ, "BENCH_SERVE": "1", "PORT": str(port), "COMPRESSION": compression}
            if cache_size is not None:
                env["CACHE_SIZE"] = str(cache_size)
            server = subprocess.Popen(["taskset", "-c", "0", sys.executable, __file__], env=env)
            try:
                for path in PATHS:
                    url = f"http://127.0.0.1:{port}{path}"
                    encodings[name] = wait_ready(url, accept)
                    results[name][path].append(wrk(url, accept, args.duration, server.pid))
            finally:
                server.terminate()
                server.wait(timeout=30)
        print(f"run {run + 1}/{args.runs} done, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(
        f"wrk -t1 -c64 -d{args.duration:g}s, server on CPU 0, wrk on CPU 1; median of {args.runs} runs:"
        " requests/s, and the server's CPU time per request in µs (user + system, all its processes),"
        " which other load on the machine disturbs less\n"
    )
    print("| configuration | sent as | " + " | ".join(f"{p} req/s | {p} CPU µs" for p in PATHS) + " |")
    print("|---|---|" + "---:|---:|" * len(PATHS))
    for name in CONFIGS:
        cells = " | ".join(
            f"{statistics.median(r for r, _ in results[name][p]):,.0f}"
            f" | {statistics.median(c for _, c in results[name][p]):,.0f}"
            for p in PATHS
        )
        print(f"| {name} | {encodings[name]} | {cells} |")


if __name__ == "__main__":
    if os.environ.get("BENCH_SERVE") == "1":
        serve()
    else:
        main()
