"""Helpers for the supervisor tests: one app script driven by the environment, process probes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

#: ``RUN`` (JSON) holds the keywords of app.run(); the views block, sleep, or answer their pid.
APP_SCRIPT = """
import asyncio, json, os, time
from aeros import WebServer

app = WebServer(__name__)

@app.route("/pid")
async def pid():
    return str(os.getpid())

@app.route("/slow")
async def slow():
    await asyncio.sleep(float(os.environ.get("SLOW", "1")))
    return "slept " + str(os.getpid())

@app.route("/block")
async def block():
    time.sleep(float(os.environ.get("BLOCK", "30")))  # blocks the event loop: a stuck worker
    return "unblocked"

@app.route("/grow")
async def grow():
    app.config.setdefault("ballast", []).append(bytearray(16 * 2**20))
    return str(os.getpid())

if __name__ == "__main__":
    keywords = dict(port=0, workers=2, graceful_timeout=5, access_log_to_std=False)
    keywords.update(json.loads(os.environ.get("RUN", "{}")))
    app.run(**keywords)
    print("parent exiting cleanly", flush=True)
"""


def run_env(server: str, **keywords: Any) -> dict[str, str]:
    return {"RUN": json.dumps({"server": server, **keywords})}


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children(parent_pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields is not None and int(fields[1]) == parent_pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def workers_of(parent_pid: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's resource tracker left out)."""
    found = set()
    for pid in children(parent_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"resource_tracker" in cmdline.read():
                    continue
        except OSError:
            continue
        found.add(pid)
    return found


def pid_answers(url: str, attempts: int, want: int = 1 << 30) -> set[int]:
    """Distinct pids answering /pid, a new connection per request."""
    seen: set[int] = set()
    for _ in range(attempts):
        seen.add(int(httpx.get(url + "/pid", timeout=5, headers={"Connection": "close"}).text))
        if len(seen) >= want:
            break
    return seen
