"""The fault log follows real changes of state: writes failing while reads work is one "failed", and
"works again" comes once, when writes do.

The directory is made read-only for real: tests run as root, whom ``chmod`` does not stop, so the
server runs in a mount namespace of its own (``unshare --map-root-user --mount``) where the cache
directory is bind-mounted read-only over itself; writes then fail with EROFS (what a read-only or
remounted file system gives), reads keep working.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent


class ReadOnlyServer:
    def __init__(self, directory: Path) -> None:
        self.process = subprocess.Popen(
            ["unshare", "--map-root-user", "--mount", sys.executable, str(HERE / "serve_readonly.py"), str(directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.process.kill()
            pytest.skip(f"cannot run a server in a mount namespace here: {''.join(self.log)[-500:]}")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def command(self, word: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def lines(self, containing: str) -> list[str]:
        return [line for line in list(self.log) if containing in line]

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def readonly_server(tmp_path: Path) -> Iterator[ReadOnlyServer]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    directory = tmp_path / "cache"
    directory.mkdir()
    server = ReadOnlyServer(directory)
    try:
        yield server
    finally:
        server.stop()


def test_writes_failing_and_reads_working_is_logged_once_each_way(readonly_server: ReadOnlyServer) -> None:
    server = readonly_server
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/page/stored").headers["x-cache"] == "MISS"
        assert client.get("/page/stored").headers["x-cache"] == "HIT"
        server.command("ro")
        # reads (hits) and writes (misses) interleaved across many 50 ms retry windows
        deadline = time.monotonic() + 1.5
        n = 0
        while time.monotonic() < deadline and n < 2000:
            n += 1
            hit = client.get("/page/stored")
            assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
            miss = client.get(f"/page/new-{n}")
            assert miss.status_code == 200 and miss.json() == {"name": f"new-{n}"}
        assert n > 10
        assert len(server.lines("failed on writes")) == 1
        assert server.lines("works again") == []
        assert server.lines("failed on reads") == []
        server.command("rw")
        for m in range(200):  # the first write after a 50 ms retry window succeeds
            client.get(f"/page/back-{m}")
            if server.lines("works again"):
                break
            time.sleep(0.01)  # let the retry window pass (bounded: 200 rounds)
        for m in range(20):
            assert client.get("/page/stored").headers["x-cache"] == "HIT"
            client.get(f"/page/after-{m}")
    assert len(server.lines("works again for writes")) == 1
    assert len(server.lines("failed on writes")) == 1
    assert len(server.lines("works again")) == 1
