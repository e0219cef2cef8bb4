"""Fixtures of the aeros-cache tests: a real redis-server on a free port, and app helpers."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
SERVE_SCRIPT = HERE / "serve_app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A redis-server of our own: ``start()``, ``kill()``, ``start()`` again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.05)
        raise TimeoutError("redis-server did not answer PING within 10 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def command(self, *words: str) -> bytes:
        """One raw RESP command (e.g. ``DBSIZE``), for checking what the cache wrote."""
        payload = f"*{len(words)}\r\n".encode() + b"".join(
            f"${len(w.encode())}\r\n".encode() + w.encode() + b"\r\n" for w in words
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload)
            return sock.recv(4096)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class AppProcess:
    """``serve_app.py`` in a process of its own, serving on a free port; ``url`` once it listens."""

    def __init__(self, backend: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE_SCRIPT), backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the app process did not start: {line!r}")
        self.url = line

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def app_process() -> Iterator[Any]:
    started: list[AppProcess] = []

    def start(backend: str) -> AppProcess:
        process = AppProcess(backend)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, containing: str) -> list[str]:
        return [r.getMessage() for r in self.records if containing in r.getMessage()]


@pytest.fixture
def cache_log() -> Iterator[_Records]:
    """What the ``aeros.cache`` logger said during the test (independent of logging configuration)."""
    handler = _Records()
    logger = logging.getLogger("aeros.cache")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class FleetInstance:
    """``serve_fleet.py`` as a real process (``app.run(workers=N)``), in a process group of its own."""

    def __init__(self, spec: str, workers: int, env: dict[str, str] | None = None) -> None:
        import re
        import threading

        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "serve_fleet.py"), spec, str(workers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
        self.url: str | None = None
        announced = threading.Event()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                match = re.search(r"Running on (http://\S+)", line)
                if match and self.url is None:
                    self.url = match.group(1)
                    announced.set()
            announced.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not announced.wait(30) or self.url is None:
            self.kill()
            raise RuntimeError("fleet instance did not start:\n" + "".join(self.lines))
        import httpx

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/pid", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("fleet instance never answered:\n" + "".join(self.lines))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL to the whole group (supervisor and workers)."""
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture
def fleet() -> Iterator[Any]:
    """Factory: ``fleet(spec, workers, env=None)`` -> a started :class:`FleetInstance`, stopped at teardown."""
    started: list[FleetInstance] = []

    def start(spec: str, workers: int = 2, env: dict[str, str] | None = None) -> FleetInstance:
        instance = FleetInstance(spec, workers, env)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()
