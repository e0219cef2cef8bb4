"""Logging set-up for ``run`` and ``run_in_thread``: the original Aeros keywords."""

from __future__ import annotations

import logging
import sys
from typing import Any

from .settings import ServerSettings

STD_FORMAT = "[%(asctime)s] %(levelname)s: %(message)s"
SERVER_LOGGER = "aeros.server"  #: where server backends log (Hypercorn, uvicorn, granian)


class NoTraceback(logging.Filter):
    """``traceback=False``: keep the exception's one-line summary, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _replace_handlers(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    for handler in [h for h in logger.handlers if getattr(h, "_aeros", False)]:
        logger.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler._aeros = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def _stream(stream: Any, fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def configure(app: Any, settings: ServerSettings) -> None:
    """Point the ``aeros`` loggers where the settings say; idempotent for repeated runs."""
    level = settings.log_level
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level

    main = logging.getLogger("aeros")
    main.setLevel(level)
    main.propagate = False
    _replace_handlers(main, [_stream(sys.stderr, STD_FORMAT)])
    # Hypercorn announces each worker's sockets itself; the runner says it once.
    logging.getLogger(SERVER_LOGGER).setLevel(level if level <= logging.DEBUG else logging.WARNING)

    for logger in (main, app.logger):
        for existing in [f for f in logger.filters if isinstance(f, NoTraceback)]:
            logger.removeFilter(existing)
        if not settings.traceback:
            logger.addFilter(NoTraceback())


class ToServerLog(logging.Handler):
    """Hands a server library's records to the ``aeros.server`` logger (and its handlers)."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(SERVER_LOGGER)
        if target.isEnabledFor(record.levelno):
            target.handle(record)


def route_to_server_log(name: str) -> logging.Logger:
    """Send a server library's logger (``uvicorn.error``, ``_granian``...) through ``aeros.server``.

    For backend plugins: once per process, whatever the number of servers; the user's own
    handlers on that logger, if any, are left alone. Returns the logger.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(handler, ToServerLog) for handler in logger.handlers):
        if logger.handlers:  # configured by the user: theirs to keep
            return logger
        logger.addHandler(ToServerLog())
        logger.propagate = False
    return logger
