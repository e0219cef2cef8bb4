"""Logging set-up for ``run`` and ``run_in_thread``: the original Aeros keywords, per app.

Each served app logs through its own child logger, ``aeros.app.<app name>``, at the
``log_level`` given to its ``run()``/``run_in_thread()``: two servers in one process keep their
own levels. Nothing else of the process's logging changes under ``run_in_thread``; the
program's own configuration (handlers on the root or ``aeros`` logger, ``propagate``) is kept.
"""

from __future__ import annotations

import logging
import sys
import weakref
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


def _handles(logger: logging.Logger) -> bool:
    """Whether a record of ``logger`` reaches some handler (its own or an ancestor's)."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _ensure_output() -> None:
    """The one default of the process: when nothing handles the ``aeros`` records (the program
    configured no logging), a stderr handler on ``aeros``; otherwise the program's configuration
    (root or ``aeros`` handlers, levels, ``propagate``) is left as it is."""
    main = logging.getLogger("aeros")
    if not _handles(main):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(STD_FORMAT))
        handler._aeros = True  # type: ignore[attr-defined]
        main.addHandler(handler)


_loggers: weakref.WeakKeyDictionary[Any, logging.Logger] = weakref.WeakKeyDictionary()
_taken: set[str] = set()


def logger_for(app: Any) -> logging.Logger:
    """The logger of one served app: ``aeros.app.<app name>`` (``-2``, ``-3``... for a second app
    of the same name), a child of ``aeros``, at the ``log_level`` of the app's last ``run()`` or
    ``run_in_thread()``. The runner's messages about the app's server go there."""
    logger = _loggers.get(app)
    if logger is None:
        base = f"aeros.app.{app.name}"
        name, number = base, 1
        while name in _taken:
            number += 1
            name = f"{base}-{number}"
        _taken.add(name)
        logger = _loggers[app] = logging.getLogger(name)
    return logger


def _set_traceback_filter(logger: logging.Logger, traceback: bool) -> None:
    for existing in [f for f in logger.filters if isinstance(f, NoTraceback)]:
        logger.removeFilter(existing)
    if not traceback:
        logger.addFilter(NoTraceback())


def configure(app: Any, settings: ServerSettings, thread: bool = False) -> logging.Logger:
    """Set up the logging of one served app; returns its logger (:func:`logger_for`).

    Per app: its ``aeros.app.<name>`` logger gets ``log_level``; ``traceback=False`` filters it
    and ``app.logger``. Shared loggers are left alone, except by ``app.run()``, whose process
    is the server's: it sets the level of ``aeros`` and ``aeros.server``. Records propagate as
    the program configured them; a stderr handler is added only when nothing handles them.
    Idempotent for repeated runs.
    """
    level = settings.log_level
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    _ensure_output()
    logger = logger_for(app)
    logger.setLevel(level)
    for each in (logger, app.logger):
        _set_traceback_filter(each, settings.traceback)
    if not thread:
        main = logging.getLogger("aeros")
        main.setLevel(level)
        _set_traceback_filter(main, settings.traceback)
        # Hypercorn announces each worker's sockets itself; the runner says it once.
        logging.getLogger(SERVER_LOGGER).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    return logger


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
