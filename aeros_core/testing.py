"""pytest fixtures for testing aeros apps (registered through the ``pytest11`` entry point).

Define an ``app`` fixture returning your ``WebServer``; then ``live_server`` serves it on a free
loopback port for the test and stops it afterwards::

    @pytest.fixture
    def app():
        from myproject import app
        return app

    def test_home(live_server):
        assert httpx.get(live_server.url + "/").status_code == 200

``serve(app, **run_keywords)`` starts further servers (stopped at teardown), and
``async_client`` is an ``httpx.AsyncClient`` bound to ``live_server.url``.
``installed_backends()`` lists the server backends installed here, to run a test on each::

    @pytest.mark.parametrize("server", installed_backends())
    def test_home_on_every_server(serve, app, server):
        assert httpx.get(serve(app, server=server).url + "/").status_code == 200

``app_process(source)`` runs a script as a real process (``app.run(workers=2)``, signals):
:class:`AppProcess` reads its output, knows its URL once it logged ``Running on``, and is stopped
with SIGTERM at teardown::

    def test_two_workers(app_process):
        server = app_process('''
            from aeros import WebServer
            app = WebServer(__name__)
            @app.route("/pid")
            async def pid(): return "ok"
            if __name__ == "__main__":
                app.run(port=0, workers=2)
        ''')
        url = server.wait_ready()          # announced, and /pid answers 200
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from .catalog import KNOWN_BACKENDS
from .runner.thread import ThreadedServer

_Fixture = TypeVar("_Fixture", bound=Callable[..., Any])
_async_fixture: Callable[[_Fixture], _Fixture]
try:  # pytest-asyncio's own marker, so that async_client works in its default "strict" mode too
    import pytest_asyncio

    _async_fixture = cast(Callable[[_Fixture], _Fixture], pytest_asyncio.fixture)
except ImportError:  # pragma: no cover - async_client then needs another async plugin (anyio)
    _async_fixture = cast(Callable[[_Fixture], _Fixture], pytest.fixture)


def installed_backends(*names: str) -> list[str]:
    """The server backends among ``names`` (default: every known one) that are installed here."""
    from .app import WebServer

    hook = WebServer(__name__).plugin_manager.hook
    return [name for name in names or ("hypercorn", *KNOWN_BACKENDS) if hook.aeros_server_backend(name=name)]


@pytest.fixture
def serve() -> Iterator[Callable[..., ThreadedServer]]:
    """Factory: ``serve(app, **run_in_thread_keywords)`` -> running server, stopped at teardown."""
    servers: list[ThreadedServer] = []

    def start(app: Any, **keywords: Any) -> ThreadedServer:
        keywords.setdefault("port", 0)
        keywords.setdefault("host", "127.0.0.1")
        keywords.setdefault("access_log_to_std", False)
        server = app.run_in_thread(**keywords)
        servers.append(server)
        return cast("ThreadedServer", server)

    yield start
    errors = []
    for server in servers:
        try:
            server.stop(timeout=15)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture
def live_server(request: pytest.FixtureRequest, serve: Callable[..., ThreadedServer]) -> ThreadedServer:
    """Your ``app`` fixture served on ``127.0.0.1`` on a free port for the duration of the test."""
    app = request.getfixturevalue("app")
    return serve(app)


@_async_fixture
async def async_client(live_server: ThreadedServer) -> AsyncIterator[Any]:
    """An ``httpx.AsyncClient`` whose base URL is ``live_server.url`` (needs httpx)."""
    import httpx

    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        yield client


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
    """A Python script run as a real process; ``url`` once it logged ``Running on URL``."""

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
        self._output_reader = threading.Thread(target=self._read, daemon=True)
        self._output_reader.start()

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
        """Everything the process wrote so far (stdout and stderr)."""
        return "".join(self.lines)

    def wait_ready(self, path: str = "/pid", timeout: float = 30) -> str:
        """Wait for the announcement, then for a 200 on ``path``; returns the URL."""
        import httpx

        if not self._announced.wait(timeout) or self.url is None:
            raise AssertionError(f"the app did not announce itself:\n{self.output}")
        url = self.url

        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the app exited with code {self.process.returncode}:\n{self.output}")
            try:
                return httpx.get(url + path, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_for(answers, timeout):
            raise AssertionError(f"the app never answered {path}:\n{self.output}")
        return url

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 20 s; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._output_reader.join(5)
        return self.process.returncode


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    """Factory: ``app_process(source, env=None, name="app.py", args=None)`` writes the script and starts it."""
    started: list[AppProcess] = []

    def start(
        source: str, env: dict[str, str] | None = None, name: str = "app.py", args: list[str] | None = None
    ) -> AppProcess:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        started.append(AppProcess(path, env, args))
        return started[-1]

    yield start
    for process in started:
        process.stop()
