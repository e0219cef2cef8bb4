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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
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
