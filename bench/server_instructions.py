#!/usr/bin/env python3
"""Instructions per request of a serving process, under callgrind: an A/B that a busy machine does not blur.

``python3 bench/server_instructions.py /hello /path/to/tree-A /path/to/tree-B raw``

Each argument after the path is a stack: a directory whose ``aeros``/``aeros_core`` and
``plugins/*`` go first on ``PYTHONPATH`` (serving ``bench/apps/aeros_app.py`` on Hypercorn, as the
aeros-hypercorn stack; ``DIR:bare`` for aeros-hypercorn-bare), or ``raw`` (``bench/apps/raw_asgi.py``
on plain Hypercorn from ``bench/.venv-peers``, as raw-hypercorn). ``--server uvicorn``: the same
on uvicorn (aeros-uvicorn; ``raw`` as raw-uvicorn). The server runs under ``valgrind --tool=callgrind``;
after a warm-up, the counters are zeroed, ``--connections`` keep-alive connections send
``--requests`` GETs each, and the instructions counted (``Ir``) are divided by the requests. The
count does not depend on what else the machine runs (req/s and CPU time do), so two trees can be
told apart by 1 %; it weighs every instruction alike (not cache misses nor system calls), so check
a result with ``bench/run.py``. About 2 minutes per stack. Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "apps"
AEROS_PY = os.environ.get("AEROS_PYTHON", str(BENCH.parent / ".venv" / "bin" / "python"))
sys.path.insert(0, str(BENCH))
from run import STACKS  # noqa: E402  (the peers' commands, as bench/run.py starts them)

STACKS_BY_NAME = {stack.name: stack for stack in STACKS}


async def client(port: int, path: str, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n".encode()
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)content-length: (\d+)", head)
        assert match, head
        await reader.readexactly(int(match[1]))
    writer.close()


def load(port: int, path: str, connections: int, requests: int) -> None:
    async def run() -> None:
        await asyncio.gather(*(client(port, path, requests) for _ in range(connections)))

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(stack: str, path: str, connections: int, requests: int, server: str = "hypercorn") -> float:
    """Instructions per request of ``stack`` serving ``path`` on ``server``."""
    port = free_port()
    out = f"/tmp/server-instructions.{os.getpid()}.{port}"
    env = {**os.environ, "PORT": str(port), "SERVER": server, "ACCESS_LOG": "0"}
    if stack == "raw":  # the raw-uvicorn or raw-hypercorn stack of bench/run.py
        command = STACKS_BY_NAME["raw-uvicorn" if server == "uvicorn" else "raw-hypercorn"].command(port)
    else:
        tree, _, variant = stack.partition(":")
        env["PYTHONPATH"] = os.pathsep.join([tree, *sorted(glob.glob(os.path.join(tree, "plugins", "*")))])
        if variant == "bare":
            env["BARE"] = "1"
        command = [AEROS_PY, "aeros_app.py"]
    valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}.%p"]
    process = subprocess.Popen(
        valgrind + command, cwd=APPS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{stack} did not start") from None
                time.sleep(0.2)
        load(port, path, connections, 20)  # warm-up
        time.sleep(0.5)
        pids = [str(process.pid)]
        pids += subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        for pid in pids:  # raw Hypercorn serves from a child process
            subprocess.run(["callgrind_control", "-z", pid], capture_output=True)
        load(port, path, connections, requests)
        time.sleep(0.3)
        for pid in pids:
            subprocess.run(["callgrind_control", "-d", pid], capture_output=True)
        time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(60)
    total = 0
    for dump in glob.glob(f"{out}.*.1"):  # the dump after the zeroing: the requests' instructions
        match = re.search(r"summary: (\d+)", Path(dump).read_text(errors="ignore"))
        total += int(match[1]) if match else 0
    for file in glob.glob(f"{out}.*"):
        os.remove(file)
    return total / (connections * requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("stacks", nargs="+", help="a tree (DIR, DIR:bare) or raw")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=100, help="per connection (Hypercorn closes at 1000)")
    parser.add_argument("--server", choices=("hypercorn", "uvicorn"), default="hypercorn")
    args = parser.parse_args()
    for stack in args.stacks:
        per_request = measure(stack, args.path, args.connections, args.requests, args.server)
        print(f"{stack:40s} {args.path:10s} {per_request / 1e3:8.1f} k instructions/request", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
