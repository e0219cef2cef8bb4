"""Fixtures of the aeros-metrics tests: apps served by real processes, a real Prometheus."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from aeros_core.testing import wait_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test of several seconds with real processes (run by default)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """A real Prometheus on a free loopback port, its data in a temp dir, scraping every second."""

    def __init__(self, directory: Path, target: str, metrics_path: str = "/metrics") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus is not installed (./dev setup installs the Debian package)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "prometheus.yml"
        config.write_text(
            textwrap.dedent(
                f"""\
                global:
                  scrape_interval: 1s
                  scrape_timeout: 900ms
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: aeros
                    metrics_path: {metrics_path}
                    static_configs:
                      - targets: ["{target}"]
                """
            )
        )
        self.log = open(directory / "prometheus.log", "w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            cwd=directory,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            try:
                return httpx.get(self.url + "/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_for(ready, timeout, 0.1):
            raise AssertionError("prometheus did not become ready")

    def query(self, expression: str) -> float | None:
        """The instant value of a scalar-valued PromQL expression (None: no data yet)."""
        answer = httpx.get(self.url + "/api/v1/query", params={"query": expression}, timeout=5).json()
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def scrapes_since(self, moment: float) -> bool:
        """Whether a successful scrape of the target started after ``moment`` (unix time)."""
        targets = httpx.get(self.url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        if not targets or targets[0]["health"] != "up":
            return False
        stamp = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", targets[0]["lastScrape"])
        assert stamp, targets[0]["lastScrape"]
        last = datetime.fromisoformat(stamp.group(1)).replace(tzinfo=timezone.utc).timestamp()
        return last + float(stamp.group(2) or 0) > moment

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Factory: ``prometheus("127.0.0.1:PORT")`` -> a ready Prometheus scraping that target."""
    started: list[Prometheus] = []

    def start(target: str, metrics_path: str = "/metrics") -> Prometheus:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        server = Prometheus(directory, target, metrics_path)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
