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


class Load:
    """Clients in threads sending ``GET path`` in a loop over raw sockets, keeping connections
    alive and reconnecting when the server closes one; tallies what each request got.

    ``fresh_failed``: a request written on a new connection (the server had completed the
    handshake) that got no response: the connection was reset or closed under it. That is
    what a server must never do. ``reused_failed``: the same on a kept-alive connection the
    server was closing as idle (a keep-alive race clients retry). ``refused``: connections the
    server refused or never completed (fine while stopping).
    """

    def __init__(self, url: str, clients: int = 8, path: str = "/pid", keep_alive: bool = True) -> None:
        import threading

        host, port = url.split("://", 1)[1].rsplit(":", 1)
        self.address = (host.strip("[]"), int(port))
        self.path = path
        self.keep_alive = keep_alive
        self.ok = 0
        self.other_status = 0
        self.fresh_failed = 0
        self.reused_failed = 0
        self.refused = 0
        self.pids: set[int] = set()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)

    def count(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def client(self) -> None:
        import socket

        close = "" if self.keep_alive else "Connection: close\r\n"
        request = f"GET {self.path} HTTP/1.1\r\nHost: test\r\n{close}\r\n"
        while not self.stopping.is_set():
            try:
                conn = socket.create_connection(self.address, timeout=3)
            except OSError:
                self.count("refused")
                time.sleep(0.01)
                continue
            fresh = True
            with conn:
                while not self.stopping.is_set():
                    try:
                        conn.sendall(request.encode())
                        status, headers, body = read_response(conn)
                    except (OSError, EOFError):
                        self.count("fresh_failed" if fresh else "reused_failed")
                        break
                    fresh = False
                    if status == 200:
                        self.count("ok")
                        if body.isdigit():
                            with self.lock:
                                self.pids.add(int(body))
                    else:
                        self.count("other_status")
                    if not self.keep_alive or headers.get("connection", "").lower() == "close":
                        break

    def summary(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "other_status": self.other_status,
            "fresh_failed": self.fresh_failed,
            "reused_failed": self.reused_failed,
            "refused": self.refused,
        }


def read_response(conn: Any) -> tuple[int, dict[str, str], str]:
    """One HTTP/1.1 response with a Content-Length body (raises EOFError when the peer closes first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError("closed within the response body")
        body += chunk
    return status, headers, body.decode("latin-1")
