"""One access-log line per HTTP request, written at the ASGI edge whatever the backend.

``access_log_format`` chooses the line:

* ``None`` (default): common log format plus the response time,
  ``127.0.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET /path?q=1 HTTP/1.1" 200 17 1.23ms``
* ``"json"``: one JSON object a line, the fields of :data:`JSON_FIELDS` plus those plugins
  contribute (:func:`~aeros_core.hookspecs.aeros_access_log_fields`; ``request_id`` is one).
* any other text: a template of ``%(atom)s`` atoms, gunicorn-like (:data:`ATOMS`, plus
  ``%({header}i)s`` / ``%({header}o)s`` for a request / response header, plus the names of
  contributed fields). An unknown atom is an error at start.

The default line ends with the contributed fields that have a value, as `` name=value``
(`` request_id=...``, aeros-otel's `` trace_id=...``).

Lines go straight to stdout and/or the access-log file, buffered and written once per turn of
the event loop, not through :mod:`logging`: a logging record per request, formatted and flushed
on its own, cost about 19 µs of a ~85 µs routed request (``bench/asgi_overhead.py``).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii as _json_string
from typing import IO, Any

from ..hookspecs import hookimpl
from ..pipeline import ASGIApp, AsgiWrapper, Stage
from ..runner.settings import ServerSettings

#: The fields of a ``"json"`` line, in order (then the contributed ones).
JSON_FIELDS = (
    "time",  # ISO 8601, UTC, milliseconds: "2026-11-21T10:00:00.123Z"
    "client",  # the client address (the real one behind trusted_proxies)
    "method",
    "path",  # as sent (raw path)
    "query",  # the query string, "" if none
    "status",
    "bytes",  # body bytes sent
    "duration_ms",
    "request_id",  # null when request ids are off
    "user_agent",
    "referer",
)

#: The atoms of a template and what each one writes (``-`` when there is nothing to write).
ATOMS = {
    "h": "client address",
    "l": "'-' (ident, never known)",
    "u": "'-' (user name, not known at the edge)",
    "t": "time of the request, [21/Nov/2026:10:00:00 +0000]",
    "r": "request line, GET /path?q=1 HTTP/1.1",
    "m": "request method",
    "U": "URL path, without the query",
    "q": "query string, with its leading '?' ('' if none)",
    "H": "protocol, HTTP/1.1",
    "s": "status",
    "b": "response body bytes, '-' if none",
    "B": "response body bytes, 0 if none",
    "f": "Referer header",
    "a": "User-Agent header",
    "D": "duration in microseconds",
    "M": "duration in milliseconds",
    "T": "duration in whole seconds",
    "L": "duration in seconds, decimal",
    "p": "process id",
    "request_id": "the request id (request_id_header), from the contributed field",
}
_ATOM = re.compile(r"%\(([^)]*)\)s")


class _Clock:
    """The common-log timestamp, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.text = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self.text


class _IsoClock:
    """ISO 8601 UTC time with milliseconds; the seconds formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.second = second
            self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self.text}.{int((now - second) * 1000):03d}Z"


class AccessLogWriter:
    """Collects lines and writes them to every stream once per event-loop turn."""

    def __init__(self, streams: list[IO[str]]) -> None:
        self.streams = streams
        self.pending: list[str] = []
        self.scheduled = False

    def write(self, line: str) -> None:
        self.pending.append(line)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        for stream in self.streams:
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stdout must not stop serving
                pass


class Record:
    """What is known of one request when its line is written."""

    __slots__ = ("clock", "response_headers", "scope", "seconds", "size", "status")

    def __init__(
        self,
        scope: dict[str, Any],
        status: int,
        size: int,
        seconds: float,
        response_headers: list[Any] | None,
        clock: _Clock,
    ) -> None:
        self.scope = scope
        self.status = status
        self.size = size
        self.seconds = seconds
        self.response_headers = response_headers
        self.clock = clock

    def request_header(self, name: bytes) -> str | None:
        value: bytes
        for header, value in self.scope["headers"]:
            if header == name:
                return value.decode("latin-1")
        return None

    def response_header(self, name: bytes) -> str | None:
        header: bytes
        value: bytes
        for header, value in self.response_headers or ():
            if header.lower() == name:
                return value.decode("latin-1")
        return None

    def client(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    def path(self) -> str:
        raw_path: bytes | None = self.scope.get("raw_path")
        path: str = raw_path.decode("latin-1") if raw_path else self.scope["path"]
        return path

    def query(self) -> str:
        query: bytes = self.scope.get("query_string", b"")
        return query.decode("latin-1")

    def target(self) -> str:
        query = self.query()
        return f"{self.path()}?{query}" if query else self.path()


Getter = Callable[[Record], Any]

_BUILTIN_GETTERS: dict[str, Getter] = {
    "h": Record.client,
    "l": lambda r: None,
    "u": lambda r: None,
    "t": lambda r: f"[{r.clock.now()}]",
    "r": lambda r: f"{r.scope['method']} {r.target()} HTTP/{r.scope.get('http_version', '1.1')}",
    "m": lambda r: r.scope["method"],
    "U": Record.path,
    "q": lambda r: f"?{r.query()}" if r.query() else "",
    "H": lambda r: f"HTTP/{r.scope.get('http_version', '1.1')}",
    "s": lambda r: r.status,
    "b": lambda r: r.size or None,
    "B": lambda r: r.size,
    "f": lambda r: r.request_header(b"referer"),
    "a": lambda r: r.request_header(b"user-agent"),
    "D": lambda r: int(r.seconds * 1e6),
    "M": lambda r: int(r.seconds * 1e3),
    "T": lambda r: int(r.seconds),
    "L": lambda r: f"{r.seconds:.6f}",
    "p": lambda r: os.getpid(),
}


def _request_header_getter(name: bytes) -> Getter:
    return lambda record: record.request_header(name)


def _response_header_getter(name: bytes) -> Getter:
    return lambda record: record.response_header(name)


def _contributed_getter(get: Callable[[dict[str, Any]], Any]) -> Getter:
    return lambda record: get(record.scope)


def template_formatter(
    template: str, contributed: Mapping[str, Callable[[dict[str, Any]], Any]]
) -> tuple[Callable[[Record], str], bool]:
    """``(format(record) -> line, needs_response_headers)`` for a ``%(atom)s`` template.

    Raises ``ValueError`` naming an atom that is neither built in nor contributed.
    """
    getters: dict[str, Getter] = {}
    needs_response_headers = False
    for atom in dict.fromkeys(_ATOM.findall(template)):
        header = re.fullmatch(r"\{([A-Za-z0-9_-]+)\}([io])", atom)
        if header:
            name = header.group(1).lower().encode("latin-1")
            if header.group(2) == "i":
                getters[atom] = _request_header_getter(name)
            else:
                needs_response_headers = True
                getters[atom] = _response_header_getter(name)
        elif atom in _BUILTIN_GETTERS:
            getters[atom] = _BUILTIN_GETTERS[atom]
        elif atom in contributed:
            getters[atom] = _contributed_getter(contributed[atom])
        elif atom == "request_id":
            getters[atom] = lambda r: None  # request ids are off (request_id_header=None)
        else:
            known = ", ".join([*_BUILTIN_GETTERS, "{header}i", "{header}o", "request_id", *contributed])
            raise ValueError(f"access_log_format: unknown atom %({atom})s (known: {known})")
    text = template
    try:
        text % {atom: "" for atom in getters}
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"access_log_format {template!r}: {error}") from None

    def format_line(record: Record) -> str:
        values = {}
        for atom, get in getters.items():
            value = get(record)
            values[atom] = "-" if value is None else value
        return text % values + "\n"

    return format_line, needs_response_headers


def json_formatter(contributed: Mapping[str, Callable[[dict[str, Any]], Any]]) -> Callable[[Record], str]:
    """``format(record) -> line`` for ``access_log_format="json"``; strings are JSON-escaped."""
    import json

    def string(value: str | None) -> str:
        return "null" if value is None else _json_string(value)

    def other(value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, str):
            return _json_string(value)
        try:
            return json.dumps(value, default=str)
        except ValueError:
            return "null"

    extra = [(name, get) for name, get in contributed.items() if name != "request_id"]
    get_request_id = contributed.get("request_id")

    clock = _IsoClock()

    def format_line(record: Record) -> str:
        scope = record.scope
        user_agent = referer = None
        for header, value in scope["headers"]:
            if header == b"user-agent":
                user_agent = value.decode("latin-1")
            elif header == b"referer":
                referer = value.decode("latin-1")
        client = scope.get("client")
        line = (
            f'{{"time":"{clock.now()}","client":{string(client[0] if client else None)},'
            f'"method":{string(scope["method"])},"path":{string(record.path())},'
            f'"query":{string(record.query())},"status":{record.status},'
            f'"bytes":{record.size},"duration_ms":{record.seconds * 1000:.3f},'
            f'"request_id":{other(get_request_id(scope) if get_request_id else None)},'
            f'"user_agent":{string(user_agent)},"referer":{string(referer)}'
        )
        for name, get in extra:
            try:
                value = get(scope)
            except Exception:  # noqa: BLE001 - a plugin's getter must never cost a log line
                value = None
            line += f",{_json_string(name)}:{other(value)}"
        return line + "}\n"

    return format_line


def contributed_fields(app: Any, settings: ServerSettings) -> dict[str, Callable[[dict[str, Any]], Any]]:
    fields: dict[str, Callable[[dict[str, Any]], Any]] = {}
    if app is None:
        return fields
    for result in app.plugin_manager.hook.aeros_access_log_fields(app=app, settings=settings):
        for name, getter in (result or {}).items():
            if (name in JSON_FIELDS and name != "request_id") or name in _BUILTIN_GETTERS:
                raise ValueError(f"an access-log field contributed by a plugin shadows the built-in {name!r}")
            fields[name] = getter
    return fields


def formatter(app: Any, settings: ServerSettings) -> tuple[Callable[[Record], str], bool] | None:
    """The line formatter for ``access_log_format`` (None: the default common format)."""
    chosen = settings.access_log_format
    if chosen is None:
        return None
    fields = contributed_fields(app, settings)
    if chosen == "json":
        return json_formatter(fields), False
    return template_formatter(chosen, fields)


def access_log(settings: ServerSettings, app: Any = None) -> Any:
    def wrap(inner: ASGIApp) -> ASGIApp:
        streams: list[IO[str]] = []
        if settings.access_log_to_std:
            streams.append(sys.stdout)
        log_file = open(settings.access_log_file, "a", encoding="utf-8") if settings.access_log_file else None
        if log_file is not None:
            streams.append(log_file)
        writer = AccessLogWriter(streams)
        clock = _Clock()
        perf_counter = time.perf_counter
        chosen = formatter(app, settings)
        format_line, keep_headers = chosen if chosen is not None else (None, False)
        extras = tuple(contributed_fields(app, settings).items()) if chosen is None else ()

        async def logged(scope: dict[str, Any], receive: Any, send: Any) -> None:
            kind = scope["type"]
            if kind == "lifespan":
                try:
                    return await inner(scope, receive, send)
                finally:
                    writer.flush()
                    if log_file is not None:
                        log_file.close()
            if kind != "http":
                return await inner(scope, receive, send)
            started = perf_counter()
            status = 500
            size = 0
            response_headers = None

            async def counting_send(message: dict[str, Any]) -> None:
                nonlocal status, size, response_headers
                if message["type"] == "http.response.body":
                    size += len(message.get("body", b""))
                elif message["type"] == "http.response.start":
                    status = message["status"]
                    if keep_headers:
                        response_headers = list(message.get("headers", ()))
                await send(message)

            try:
                await inner(scope, receive, counting_send)
            finally:
                if format_line is not None:
                    record = Record(scope, status, size, perf_counter() - started, response_headers, clock)
                    writer.write(format_line(record))
                else:
                    client = scope.get("client")
                    query = scope.get("query_string")
                    raw_path = scope.get("raw_path")
                    target = raw_path.decode("latin-1") if raw_path else scope["path"]
                    if query:
                        target = f"{target}?{query.decode('latin-1')}"
                    extra = ""
                    for name, get in extras:
                        value = get(scope)
                        if value is not None:
                            extra += f" {name}={value}"
                    writer.write(
                        f'{client[0] if client else "-"} - - [{clock.now()}] "{scope["method"]} {target} '
                        f'HTTP/{scope.get("http_version", "1.1")}" {status} {size or "-"} '
                        f"{(perf_counter() - started) * 1000:.2f}ms{extra}\n"
                    )

        return logged

    return wrap


@hookimpl
def aeros_asgi_wrapper(app: Any, settings: ServerSettings) -> AsgiWrapper | None:
    if not (settings.access_log_to_std or settings.access_log_file):
        return None
    return AsgiWrapper(Stage.OBSERVE, access_log(settings, app))


@hookimpl
def aeros_server_config(app: Any, settings: ServerSettings) -> None:
    """An unknown atom in ``access_log_format`` is an error at start, before any socket is bound."""
    if settings.access_log_to_std or settings.access_log_file:
        formatter(app, settings)
