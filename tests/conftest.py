"""Shared helpers for the core tests: real servers in subprocesses, throwaway plugin distributions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:  # tests/supervision.py: helpers of the supervisor tests
    sys.path.insert(0, str(ROOT / "tests"))


class ScriptServer:
    """A Python script run as a real process that serves on a port it announces on stderr."""

    def __init__(self, path: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.path = path
        self.lines: list[str] = []
        self.url: str | None = None
        self._announced = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, *(args or [str(path)])],
            cwd=path.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = re.search(r"Running on (https?://\S+)", line)
            if match and self.url is None:
                self.url = match.group(1)
                self._announced.set()
        self._announced.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 20) -> str:
        """Wait for the announcement, then for a 200 on /pid."""
        if not self._announced.wait(timeout) or self.url is None:
            raise AssertionError(f"server did not announce itself:\n{self.output}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/pid", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"server never answered:\n{self.output}")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)


@pytest.fixture
def script_server(tmp_path: Path) -> Iterator:
    """Factory: ``script_server(source, env=None)`` writes the script and starts it."""
    started: list[ScriptServer] = []

    def start(
        source: str, env: dict[str, str] | None = None, name: str = "server_app.py", args: list[str] | None = None
    ) -> ScriptServer:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        server = ScriptServer(path, env, args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory: ``plugin_dist(dist, module_source, entry_points={name: "module:Class"})``.

    Writes the module and a ``*.dist-info`` (METADATA, entry_points.txt) into a temp dir on
    ``sys.path``, so ``importlib.metadata`` discovers it as an installed distribution.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    added_modules: list[str] = []

    def make(dist: str, module: str, source: str, entry_points: dict[str, str], version: str = "1.0") -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[aeros]\n{lines}\n")
        added_modules.append(module)
        return site

    yield make
    for module in added_modules:
        sys.modules.pop(module, None)
