#!/usr/bin/env python3
"""Server CPU time per request, without wrk: ``taskset -c 1 .venv/bin/python bench/server_cpu.py --server uvicorn``.

Starts ``app.run(server=...)`` (a routed ``/hello``) pinned to CPU 0 in a child process, sends
``--requests`` keep-alive GETs over ``--connections`` connections from this process, and prints the
server's CPU microseconds (user + system, from /proc) per request. For A/B comparisons of the
server layer (connection handling) on a noisy machine: run both sides in one session and compare
medians of several rounds. ``PYTHONPATH`` selects the code under test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys

APP = """
import sys
from aeros import WebServer
app = WebServer(__name__)
@app.route("/hello")
async def hello():
    return "Hello, World!"
app.run(server=sys.argv[1], port=0, access_log_to_std=False)
"""

REQUEST = b"GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(port: int, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        await reader.readexactly(length)
    writer.close()


async def load(port: int, requests: int, connections: int) -> None:
    await asyncio.gather(*(client(port, requests // connections) for _ in range(connections)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="hypercorn")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-c", APP, args.server],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = None
        for line in process.stderr:
            match = re.search(r"Running on http://[^:]+:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "server did not start"
        asyncio.run(load(port, 2000, args.connections))  # warm-up
        results = []
        for _ in range(args.rounds):
            before = cpu_seconds(process.pid)
            asyncio.run(load(port, args.requests, args.connections))
            results.append((cpu_seconds(process.pid) - before) / args.requests * 1e6)
        print(
            f"{args.server}: server CPU µs/request median {statistics.median(results):.1f} (rounds {[round(r, 1) for r in results]})"
        )
    finally:
        process.terminate()
        process.wait(20)


if __name__ == "__main__":
    main()
