"""Fixtures of the aeros-otel tests: apps served by real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


class AppProcess:
    """A script serving an app in a real process; ``url`` once it announced ``Running on``."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.url: str | None = None
        self.announced = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=path.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = re.search(r"Running on (https?://\S+)", line)
            if match and self.url is None:
                self.url = match.group(1)
                self.announced.set()
        self.announced.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, path: str = "/pid", timeout: float = 30) -> str:
        if not self.announced.wait(timeout) or self.url is None:
            raise AssertionError(f"the app did not announce itself:\n{self.output}")
        url = self.url

        def answers() -> bool:
            try:
                return httpx.get(url + path, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_for(answers, timeout):
            raise AssertionError(f"the app never answered {path}:\n{self.output}")
        return url

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.reader.join(5)
        return self.process.returncode


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    """Factory: ``app_process(source, env=None)`` writes the script and starts it."""
    started: list[AppProcess] = []

    def start(source: str, env: dict[str, str] | None = None, name: str = "traced_app.py") -> AppProcess:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        started.append(AppProcess(path, env))
        return started[-1]

    yield start
    for process in started:
        process.stop()
