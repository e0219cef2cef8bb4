"""Everything a server needs to know, whatever backend serves the app: the one list of run() keywords.

:class:`ServerSettings` is the single source of the keywords of ``app.run(...)``,
``app.run_in_thread(...)`` and ``aeros run``: each field carries its help text and how to read
it from text, from which the ``AEROS_<NAME>`` environment variables and the ``--kebab-case``
flags of ``aeros run`` are derived. :meth:`ServerSettings.resolve` applies the contract's
precedence, in one place: command-line flag > keyword passed in code > environment variable >
default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # pragma: no cover
    from ..app import WebServer
    from .lifecycle import Lifecycle

ENV_PREFIX = "AEROS_"


# --- reading a setting from text (environment variables, command-line flags) ----------------------


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def parse_list(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_level(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text.strip()


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``""`` or ``"none"`` read as ``None``; anything else through ``parse``."""

    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() in ("", "none") else parse(text)

    parse_optional.__name__ = f"optional_{getattr(parse, '__name__', 'value')}"
    return parse_optional


def setting(default: Any, help: str, parse: Callable[[str], Any], *, thread: bool = True, env: bool = True) -> Any:
    """A run() keyword: its default, help text, how to read it from text, and where it applies.

    ``thread=False``: a keyword of the supervisor (``workers``, ``reload``...), refused by
    ``run_in_thread``. ``env=False``: not read from the environment.
    """
    metadata = {"help": help, "parse": parse, "thread": thread, "env": env}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --- the settings ---------------------------------------------------------------------------------


@dataclass
class ServerSettings:
    """The keywords of ``app.run(...)``, after plugins adjusted them (``aeros_server_config``)."""

    host: str = setting("127.0.0.1", "interface to listen on", str)
    port: int = setting(8000, "port to listen on (0: a free one)", int)
    workers: int = setting(1, ">1: that many supervised worker processes", int, thread=False)
    log_level: int | str = setting("INFO", "level of the aeros and server logs", parse_level)
    access_log_to_std: bool = setting(True, "write the access log to standard output", parse_bool)
    access_log_file: str | None = setting(None, "also write the access log to this file", optional(str))
    traceback: bool = setting(True, "False: log errors on one line, without the traceback", parse_bool)
    soft_limit: int | None = setting(None, "requests in flight per worker; beyond: 503 + Retry-After", optional(int))
    hard_limit: int | None = setting(None, "listen backlog", optional(int))
    certfile: str | None = setting(None, "TLS certificate (PEM); HTTP/2 over ALPN", optional(str))
    keyfile: str | None = setting(None, "TLS private key (PEM)", optional(str))
    reload: bool = setting(False, "development: restart when a source file changes", parse_bool, thread=False)
    debug: bool = setting(False, "Quart's debug mode (debug pages, reload); development only", parse_bool)
    graceful_timeout: float = setting(10.0, "seconds for requests in flight to finish on shutdown", float)
    server: str = setting("hypercorn", "server backend: hypercorn, uvicorn, granian", str)
    include_server_header: bool = setting(True, "send a Server header", parse_bool)
    # timeouts and limits (defaults protect a server facing the internet)
    keep_alive_timeout: float = setting(5.0, "seconds before an idle keep-alive connection is closed", float)
    header_timeout: float = setting(10.0, "seconds for the whole request head to arrive (slowloris)", float)
    max_connections: int | None = setting(
        None, "connections per worker; beyond: 503 and close (None: from the file-descriptor limit)", optional(int)
    )
    max_head_size: int = setting(16384, "bytes of request line + headers; beyond: 431", int)
    worker_timeout: float = setting(
        30.0, "seconds a worker's event loop may be stuck before it is replaced", float, thread=False
    )
    max_requests: int | None = setting(None, "recycle a worker after that many requests", optional(int), thread=False)
    max_requests_jitter: int = setting(0, "random 0..N added to max_requests per worker", int, thread=False)
    max_worker_memory: float | None = setting(
        None, "MB of RSS above which a worker is recycled", optional(float), thread=False
    )
    # behind load balancers
    trusted_proxies: list[str] | None = setting(
        None, "IPs/CIDRs (or '*') whose Forwarded / X-Forwarded-* headers are believed", optional(parse_list)
    )
    proxy_protocol: bool = setting(False, "accept the PROXY protocol (v1/v2) from trusted_proxies", parse_bool)
    health_path: str | None = setting(None, "e.g. /healthz: 200 while the event loop runs", optional(str))
    ready_path: str | None = setting(
        None, "e.g. /readyz: 200 when serving, 503 when starting or draining", optional(str)
    )
    log_health: bool = setting(False, "write health and readiness requests to the access log", parse_bool)
    drain_delay: float = setting(0.0, "on SIGTERM, seconds to keep serving (ready_path 503) before closing", float)
    bind: list[str] | None = setting(
        None, "addresses: HOST:PORT, [::1]:PORT, unix:/path, fd://N (instead of host/port)", optional(parse_list)
    )
    # logs
    access_log_format: str | None = setting(
        None, 'access log: None (common + duration), "json", or a %(atom)s template', optional(str)
    )
    request_id_header: str | None = setting(
        "X-Request-ID", "request id header: taken from a trusted proxy or generated; None: off", optional(str)
    )
    #: settings of the backend itself (Hypercorn's ``Config`` names...), from run()'s other keywords
    backend_options: dict[str, Any] = field(default_factory=dict)
    #: the serving state of the server these settings serve, set by ``serve()`` in the serving process
    lifecycle: Lifecycle | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("trusted_proxies", "bind"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, parse_list(value))
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        for name in ("soft_limit", "max_connections", "max_requests"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("keep_alive_timeout", "header_timeout", "worker_timeout", "graceful_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.drain_delay < 0 or self.max_requests_jitter < 0:
            raise ValueError("drain_delay and max_requests_jitter must not be negative")
        if self.max_head_size < 1024:
            raise ValueError(f"max_head_size must be at least 1024, got {self.max_head_size}")
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError("TLS needs both certfile and keyfile")
        if isinstance(self.log_level, str):
            level = logging.getLevelName(self.log_level.upper())
            if not isinstance(level, int):
                raise ValueError(f"unknown log_level {self.log_level!r}")

    # --- where the keywords come from --------------------------------------------------------

    @classmethod
    def keywords(cls, thread: bool = False) -> dict[str, Any]:
        """The run() keywords (``thread=True``: those of ``run_in_thread``), name -> dataclass field."""
        return {f.name: f for f in fields(cls) if "help" in f.metadata and (f.metadata["thread"] or not thread)}

    @classmethod
    def env_name(cls, name: str) -> str:
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], thread: bool = False) -> dict[str, Any]:
        """The settings given as ``AEROS_<NAME>`` variables, parsed; a bad value names its variable."""
        found: dict[str, Any] = {}
        for name, spec in cls.keywords(thread).items():
            variable = cls.env_name(name)
            if not spec.metadata["env"] or variable not in environ:
                continue
            try:
                found[name] = spec.metadata["parse"](environ[variable])
            except ValueError as error:
                raise ValueError(f"environment variable {variable}={environ[variable]!r}: {error}") from None
        return found

    @classmethod
    def resolve(
        cls,
        given: Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
        thread: bool = False,
    ) -> ServerSettings:
        """Settings from keywords given in code or on the command line, over ``AEROS_*`` variables,
        over the defaults. Keywords that are not settings go to ``backend_options``.

        ``thread=True`` (``run_in_thread``): the supervisor's keywords are refused.
        """
        known = cls.keywords()
        if thread:
            refused = sorted(name for name in given if name in known and not known[name].metadata["thread"])
            if refused:
                raise TypeError(f"run_in_thread() does not take {', '.join(refused)} (a keyword of app.run())")
        values = cls.from_environment(os.environ if environ is None else environ, thread)
        backend_options = dict(given.get("backend_options") or {})
        for name, value in given.items():
            if name == "backend_options":
                continue
            if name in known:
                values[name] = value
            else:
                backend_options[name] = value
        try:
            return cls(**values, backend_options=backend_options)
        except ValueError as error:
            sources = sorted(name for name in values if name not in given)
            if sources:
                names = ", ".join(cls.env_name(name) for name in sources)
                raise ValueError(f"{error} (settings from the environment: {names})") from None
            raise

    @classmethod
    def external(cls, app: WebServer) -> ServerSettings:
        """Settings for an app served by an ASGI server aeros did not start (it logs itself), or by
        ``app.test_client()``: the ``AEROS_*`` variables of the edge features apply."""
        given = {"host": app.host, "port": app.port, "server": "external", "access_log_to_std": False}
        return cls.resolve(given, thread=True)

    @property
    def tls(self) -> bool:
        return bool(self.certfile)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def backlog(self) -> int:
        return self.hard_limit if self.hard_limit is not None else 1024


class ThreadRunOptions(TypedDict, total=False):
    """The keywords of ``app.run_in_thread(...)``, for type checkers (the fields of :class:`ServerSettings`
    that a thread can honour; a test keeps the two lists equal)."""

    log_level: int | str
    access_log_to_std: bool
    access_log_file: str | None
    traceback: bool
    soft_limit: int | None
    hard_limit: int | None
    certfile: str | None
    keyfile: str | None
    debug: bool
    graceful_timeout: float
    server: str
    include_server_header: bool
    keep_alive_timeout: float
    header_timeout: float
    max_connections: int | None
    max_head_size: int
    trusted_proxies: list[str] | str | None
    proxy_protocol: bool
    health_path: str | None
    ready_path: str | None
    log_health: bool
    drain_delay: float
    bind: list[str] | str | None
    access_log_format: str | None
    request_id_header: str | None
    #: settings of the backend itself (Hypercorn ``Config`` names...); untyped keywords work too
    backend_options: dict[str, Any]


class RunOptions(ThreadRunOptions, total=False):
    """The keywords of ``app.run(...)`` beyond ``host`` and ``port``, for type checkers."""

    workers: int
    reload: bool
    worker_timeout: float
    max_requests: int | None
    max_requests_jitter: int
    max_worker_memory: float | None
