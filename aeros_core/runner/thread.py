"""``app.run_in_thread()``: a server in a background thread, for embedding and tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .logs import logger_for
from .serve import close_loop, new_event_loop, serve
from .settings import ServerSettings
from .sockets import listen, url_of

STARTUP_TIMEOUT = 30.0


class ThreadedServer:
    """A running server: ``.url``, ``.host``, ``.port``, ``.stop(timeout)``; a context manager."""

    def __init__(self, app: Any, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings
        #: every address of ``bind`` (or ``host``/``port``); ``socket``/``url``: the first one
        self.sockets = listen(settings, environ={}).all()
        self.socket = self.sockets[0]
        self.url = url_of(settings, self.socket)
        address = self.socket.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]
        self._loop = new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"aeros-server-{self.port}", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._stop = asyncio.Event()
            self._loop.run_until_complete(serve(self.app, self.settings, self.sockets, self._stop, self._started.set))
        except BaseException as error:  # reported to the thread that started us
            self._error = error
            if self._started.is_set():
                logger_for(self.app).exception("server on %s stopped with an error", self.url)
        finally:
            self._started.set()
            close_loop(self._loop)
            for sock in self.sockets:
                sock.close()

    def start(self) -> ThreadedServer:
        self._thread.start()
        if not self._started.wait(STARTUP_TIMEOUT):
            self.stop(timeout=1)
            raise TimeoutError(f"server on {self.url} did not start within {STARTUP_TIMEOUT}s")
        if self._error is not None:
            self._thread.join(5)
            raise RuntimeError(f"server on {self.url} failed to start: {self._error!r}") from self._error
        logger_for(self.app).info("Running on %s (thread %s)", self.url, self._thread.name)
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5) -> None:
        """Stop accepting, let requests in flight finish (up to the grace period), join the thread."""
        if self._thread.is_alive() and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"server on {self.url} did not stop within {timeout}s")

    def __enter__(self) -> ThreadedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ThreadedServer {self.url} {'running' if self.running else 'stopped'}>"


def start_in_thread(app: Any, keywords: dict[str, Any]) -> ThreadedServer:
    from . import prepare

    settings = prepare(app, keywords, thread=True)
    return ThreadedServer(app, settings).start()
