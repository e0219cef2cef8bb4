"""Logging per app and per server (issue 16.4): two servers in one process keep their own log
levels, and the program's own logging configuration is left as it was."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aeros import WebServer
from aeros_core.runner.logs import logger_for


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, logger: logging.Logger) -> list[str]:
        return [f"{r.levelname} {r.getMessage()}" for r in self.records if r.name == logger.name]


@pytest.fixture
def users_handler() -> Iterator[Collect]:
    """The program's own handler and level on the ``aeros`` logger, as a user would set them."""
    main = logging.getLogger("aeros")
    saved = (main.level, main.propagate)
    handler = Collect()
    main.addHandler(handler)
    main.setLevel(logging.ERROR)
    yield handler
    main.removeHandler(handler)
    main.setLevel(saved[0])
    main.propagate = saved[1]


def chatty_app() -> WebServer:
    app = WebServer(__name__)

    @app.route("/talk")
    async def talk() -> Any:
        log = logger_for(app)
        log.debug("debug line")
        log.info("info line")
        log.warning("warning line")
        return "said"

    return app


def test_two_servers_in_one_process_log_at_their_own_levels(serve, users_handler: Collect) -> None:
    verbose, quiet = chatty_app(), chatty_app()
    verbose_server = serve(verbose, log_level="DEBUG")
    quiet_server = serve(quiet, log_level="WARNING", server="hypercorn")
    verbose_log, quiet_log = logger_for(verbose), logger_for(quiet)
    assert verbose_log.name != quiet_log.name
    assert verbose_log.name.startswith("aeros.app.") and quiet_log.name.startswith("aeros.app.")
    for server in (verbose_server, quiet_server):
        assert httpx.get(server.url + "/talk", timeout=10).text == "said"

    assert users_handler.messages(verbose_log) == [
        f"INFO Running on {verbose_server.url} (thread aeros-server-{verbose_server.port})",
        "DEBUG debug line",
        "INFO info line",
        "WARNING warning line",
    ]
    assert users_handler.messages(quiet_log) == ["WARNING warning line"]
    # the first server's level was not changed by the second one's start
    assert (verbose_log.level, quiet_log.level) == (logging.DEBUG, logging.WARNING)


def test_the_programs_logging_configuration_is_kept(serve, users_handler: Collect) -> None:
    main = logging.getLogger("aeros")
    root_handlers = list(logging.getLogger().handlers)
    serve(chatty_app(), log_level="DEBUG", traceback=False)
    serve(chatty_app(), log_level="CRITICAL")
    assert main.level == logging.ERROR  # the user's
    assert main.propagate is True
    assert main.handlers == [users_handler]  # the user's handler works, and no handler of ours beside it
    assert logging.getLogger().handlers == root_handlers
    assert not main.filters


def test_a_records_reaches_the_root_handlers_when_the_program_configured_the_root(serve) -> None:
    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)
    try:
        app = chatty_app()
        server = serve(app, log_level="INFO")
        httpx.get(server.url + "/talk", timeout=10)
    finally:
        root.removeHandler(handler)
    assert handler.messages(logger_for(app)) == [
        f"INFO Running on {server.url} (thread aeros-server-{server.port})",
        "INFO info line",
        "WARNING warning line",
    ]
    assert not [h for h in logging.getLogger("aeros").handlers if getattr(h, "_aeros", False)]


def test_a_program_without_logging_configuration_still_sees_the_server_start(script_server) -> None:
    server = script_server(
        """
        import logging, threading
        from aeros import WebServer

        app = WebServer(__name__)

        @app.route("/pid")
        async def pid():
            main = logging.getLogger("aeros")
            return {"level": main.level, "propagate": main.propagate}

        if __name__ == "__main__":
            WebServer("other").run_in_thread(port=0, log_level="ERROR")  # first, and quiet
            app.run_in_thread(port=0)
            threading.Event().wait()
        """
    )
    url = server.wait_ready()
    assert server.output.count("Running on") == 1, server.output  # the ERROR-level server kept quiet
    assert httpx.get(url + "/pid", timeout=10).json() == {"level": logging.NOTSET, "propagate": True}
