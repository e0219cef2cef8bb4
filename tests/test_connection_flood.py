"""A flood of idle and slow connections costs no normal client its answer (issue 11), every backend.

The server is a real process whose file-descriptor limit is 1,024 (set in the child before it
starts). The attacker, in this process, opens 1,100 connections that send nothing, 200 that
trickle a request head (slowloris) and 100 that trickle a request body, then normal clients ask
while those are open: at least 95 % must be answered (200) within 2 s.
"""

from __future__ import annotations

import asyncio
import resource
import time

import pytest

from aeros_core.testing import installed_backends

IDLE, SLOWLORIS, SLOW_BODY = 1100, 200, 100
NORMAL, NORMAL_AT_ONCE = 60, 6
ANSWER_WITHIN = 2.0
ATTACK_FDS = IDLE + SLOWLORIS + SLOW_BODY + NORMAL_AT_ONCE + 200

SCRIPT = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
from quart import request
from aeros import WebServer

app = WebServer(__name__)

@app.route("/pid")
async def pid():
    return str(os.getpid())

@app.route("/upload", methods=["POST"])
async def upload():
    return str(len(await request.get_data()))

app.run(server=sys.argv[1], port=0, header_timeout=2, keep_alive_timeout=2, access_log_to_std=False)
"""


def raise_own_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < ATTACK_FDS:
        pytest.skip(f"the attacker needs {ATTACK_FDS} file descriptors; the hard limit here is {hard}")
    if soft != resource.RLIM_INFINITY and soft < ATTACK_FDS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ATTACK_FDS, hard))


async def attack(port: int, stop: asyncio.Event, opened: asyncio.Event) -> list[asyncio.Task]:
    """Open the attacking connections (bounded concurrency; ``opened`` is set when every one was
    tried); their tasks run until ``stop``."""
    gate = asyncio.Semaphore(64)
    total = IDLE + SLOWLORIS + SLOW_BODY
    tried = 0

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        async with gate:
            try:
                return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
            except (OSError, asyncio.TimeoutError):
                return None

    async def hold(lines: list[bytes], every: float) -> None:
        nonlocal tried
        streams = await connect()
        tried += 1
        if tried == total:
            opened.set()
        if streams is None:
            return
        _, writer = streams
        try:
            for line in lines:
                writer.write(line)
                try:
                    await asyncio.wait_for(stop.wait(), every)
                    return
                except asyncio.TimeoutError:
                    pass
            await stop.wait()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    slowloris = [b"GET /pid HTTP/1.1\r\n"] + [b"x-a: b\r\n"] * 60
    slow_body = [b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n"] + [b"x"] * 60
    tasks = [asyncio.create_task(hold([], 1)) for _ in range(IDLE)]
    tasks += [asyncio.create_task(hold(slowloris, 1)) for _ in range(SLOWLORIS)]
    tasks += [asyncio.create_task(hold(slow_body, 2)) for _ in range(SLOW_BODY)]
    return tasks


async def normal_request(port: int) -> float | None:
    """Seconds until a 200 came back on a new connection, or None."""
    started = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), ANSWER_WITHIN)
        writer.write(b"GET /pid HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), ANSWER_WITHIN)
    except (OSError, asyncio.TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()
    return time.monotonic() - started if status.startswith(b"HTTP/1.1 200") else None


async def flood_and_measure(port: int) -> list[float | None]:
    stop, opened = asyncio.Event(), asyncio.Event()
    attackers = await attack(port, stop, opened)
    gate = asyncio.Semaphore(NORMAL_AT_ONCE)

    async def one() -> float | None:
        async with gate:
            return await normal_request(port)

    try:
        await asyncio.wait_for(opened.wait(), 30)  # every attacking connection open (or refused)
        return list(await asyncio.gather(*(one() for _ in range(NORMAL))))
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*attackers, return_exceptions=True), 30)


GRANIAN_MARGINAL = pytest.mark.xfail(
    reason="granian cannot evict idle connections (its Rust server counts them, backpressure): normal "
    "clients queued behind the flood wait for header_timeout (2 s here) to free slots; measured 60/60 "
    "in 5 of 5 runs with the slowest at 1.77-1.92 s (no margin), 54/60 once; backpressure 2000 or 400 "
    "did worse (54/60, 48/60); no public granian option "
    "frees slots earlier without shortening header_timeout and keep_alive_timeout (hyper's one "
    "header_read_timeout: at 1 s the slowest was 0.7-0.87 s); plugins/aeros_granian/README.md",
    strict=False,
)


@pytest.mark.serial  # 1,400 connections and 2 s per answer: alone on the machine
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "server",
    [pytest.param(name, marks=GRANIAN_MARGINAL) if name == "granian" else name for name in installed_backends()],
)
def test_a_flood_of_idle_and_slow_connections_leaves_normal_clients_answered(script_server, server):
    raise_own_limit()
    process = script_server(SCRIPT, args=["server_app.py", server])
    url = process.wait_ready()
    port = int(url.rsplit(":", 1)[1])
    times = asyncio.run(flood_and_measure(port))
    answered = [t for t in times if t is not None and t <= ANSWER_WITHIN]
    slowest = max((t for t in times if t is not None), default=None)
    print(f"{server}: {len(answered)}/{NORMAL} answered within {ANSWER_WITHIN}s (slowest: {slowest})")
    assert len(answered) >= 0.95 * NORMAL, (
        f"{server}: {len(answered)}/{NORMAL} answered within {ANSWER_WITHIN}s; times {times}\n{process.output[-3000:]}"
    )
    assert process.process.poll() is None, process.output[-3000:]
