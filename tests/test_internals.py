"""The private parts of other packages that aeros uses are the ones docs/internals.md lists.

Two kinds of test:

* a scan of the source tree (aeros, aeros_core, plugins/*/aeros_*) for what it takes from Quart,
  Flask, Werkzeug, Hypercorn, uvicorn, granian, h11 and httptools, compared with the table of
  docs/internals.md both ways: nothing used that the table leaves out, nothing listed that is gone;
* one test per fast path, failing when the installed versions leave it switched off (the class in
  use for a real connection, the messages on the wire), named in the table's last column.

What the scan finds, in each source file:

* every name imported from those packages and every attribute taken from an imported module
  (``uvicorn.Server``): private (a ``_`` part) ones must be in the table, public ones in
  :data:`PUBLIC` below or in the table;
* every ``obj._name`` whose ``_name`` aeros does not define itself and one of those packages does;
* every method or attribute a class of aeros overrides in a class of those packages: in
  :data:`PUBLIC` (a documented extension point) or in the table.
"""

from __future__ import annotations

import ast
import gc
import importlib
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from aeros import WebServer
from aeros_core.builtins.fast_json import load_orjson
from aeros_core.hookspecs import hookimpl
from aeros_core.pipeline import AsgiWrapper
from aeros_core.testing import installed_backends

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "internals.md"
WATCHED = ("quart", "hypercorn", "flask", "werkzeug", "uvicorn", "granian", "h11", "httptools")

#: Public API of those packages that aeros imports or subclasses (each in the project's documentation).
PUBLIC = frozenset(
    {
        "quart.Quart",
        "quart.Quart.asgi_http_class",  # the connection class Quart documents as replaceable
        "quart.Quart.asgi_app",  # Quart's documented place for ASGI middleware (app.asgi_app = ...)
        "quart.Quart.request_class",  # Flask/Quart's documented way to use a Request subclass
        "quart.Quart.dispatch_request",
        "quart.Quart.process_response",
        "quart.Quart.run",
        "quart.Quart.startup",
        "quart.Quart.shutdown",
        "quart.Response",
        "quart.jsonify",
        "quart.current_app",
        "quart.request",
        "quart.has_request_context",
        "quart.ctx.RequestContext",
        "quart.typing.ResponseReturnValue",
        "quart.typing.ResponseTypes",
        "quart.json.provider.DefaultJSONProvider",  # Flask's documented way to change JSON
        "quart.json.provider.DefaultJSONProvider.dumps",
        "quart.json.provider.DefaultJSONProvider.response",
        "werkzeug.datastructures.Headers",
        "werkzeug.datastructures.MultiDict",
        "werkzeug.exceptions.BadRequest",
        "werkzeug.exceptions.HTTPException",
        "hypercorn.config.Config",
        "uvicorn",
        "uvicorn.Config",
        "uvicorn.Server",
        "granian.server.embed.Server",  # granian's embedded server, marked experimental by granian
        "granian.constants.HTTPModes",
        "granian.constants.Interfaces",
        "granian.http.HTTP1Settings",
        # h11's documented API (h11.readthedocs.io, "API documentation"): the connection, its events,
        # its states and its error; overriding its methods is another matter (in docs/internals.md)
        "h11",
        "h11.Connection",
        "h11.Request",
        "h11.Response",
        "h11.RemoteProtocolError",
        "h11.SERVER",
        "h11.SEND_BODY",
        "h11.Data",
        "h11.EndOfMessage",
        "h11.ERROR",
        "h11.LocalProtocolError",
        "werkzeug.sansio.utils.get_content_length",  # in Werkzeug's "Utilities" reference (HTTP helpers)
        "werkzeug.routing.MapAdapter",  # Werkzeug's URL routing reference: the object Map.bind returns
        "werkzeug.exceptions.RequestTimeout",  # Werkzeug's HTTP exceptions reference (408)
        "quart.wrappers.Request",  # Quart's request and response classes (Quart.request_class/response_class)
        "quart.wrappers.Response",
        "quart.routing.QuartMap",  # Quart.url_map_class, compared by type only (never subclassed)
        # Quart's signals (Quart's "Signals" documentation): aeros sends or connects to them
        "quart.signals.request_started",
        "quart.signals.request_finished",
        "quart.signals.request_tearing_down",
        "quart.signals.appcontext_tearing_down",
        "quart.signals.got_request_exception",
    }
)


def sources() -> list[Path]:
    roots = [ROOT / "aeros", ROOT / "aeros_core", *sorted(ROOT.glob("plugins/*/aeros_*"))]
    return sorted(path for root in roots for path in root.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def is_private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


@dataclass(frozen=True)
class Use:
    file: str
    name: str  # dotted ("granian._granian.SocketHolder") or an attribute alone ("._ssp")
    public: bool  # in PUBLIC


@cache
def watched_private_names() -> frozenset[str]:
    """Every ``_name`` the installed watched packages define (functions, classes, attributes)."""
    names: set[str] = set()
    for package in WATCHED:
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        for directory in getattr(module, "__path__", []):
            for path in Path(directory).rglob("*.py"):
                tree = ast.parse(path.read_bytes())
                for node in ast.walk(tree):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        names.add(node.name)
                    elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                        names.add(node.attr)
                    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        names.add(node.id)
    return frozenset(name for name in names if name.startswith("_") and not is_dunder(name))


@cache
def aeros_own_names() -> frozenset[str]:
    """The names aeros defines itself: functions, classes, module names, ``self.``/``cls.`` attributes."""
    names: set[str] = set()
    for path in sources():
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
    return frozenset(names)


def resolve(dotted: str) -> Any:
    """The object a dotted name of a watched package names (module, class, function...)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            target = getattr(target, part)
        return target
    raise ImportError(dotted)


def module_name(path: Path) -> str:
    """The import name of a source file (``aeros_core.request_path``, ``aeros_cache.plugin``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "plugins":
        parts = parts[2:]
    return ".".join(part for part in parts if part != "__init__")


@cache
def aeros_subclasses() -> dict[str, str]:
    """``module.Class`` of each aeros class defined at module level whose base is a class of a watched
    package, mapped to that base's dotted name: a class of aeros that derives from it (``WebServer``
    from ``LeanRequestPath`` from ``quart.Quart``) overrides that base's names too."""
    found: dict[str, str] = {}
    for path in sources():
        tree = ast.parse(path.read_bytes())
        aliases = watched_aliases(tree)
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    dotted = dotted_base(base, aliases)
                    if dotted is not None:
                        found[f"{module_name(path)}.{node.name}"] = dotted
                        break
    return found


def watched_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name in a watched package, for each import of one."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in WATCHED:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in WATCHED:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or alias.name
    return aliases


def imported_module(path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``from ... import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, node.module] if node.module else package)


def scan(path: Path) -> set[Use]:
    tree = ast.parse(path.read_bytes())
    file = relative(path)
    uses: set[Use] = set()
    aliases: dict[str, str] = {}  # local name -> dotted name in a watched package
    inherited: dict[str, str] = {}  # local name of an aeros class -> the watched class it derives from

    def record(name: str) -> None:
        uses.add(Use(file, name, name in PUBLIC and not is_private(name)))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in WATCHED:
                for alias in node.names:
                    dotted = f"{node.module}.{alias.name}"
                    aliases[alias.asname or alias.name] = dotted
                    record(dotted)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in WATCHED:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or alias.name
                    record(alias.name)
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] not in WATCHED):
            origin = imported_module(path, node)
            for alias in node.names:
                base = aeros_subclasses().get(f"{origin}.{alias.name}")
                if base is not None:
                    inherited[alias.asname or alias.name] = base
    own = aeros_own_names()
    theirs = watched_private_names()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in aliases and not is_dunder(node.attr):
                target = aliases[node.value.id]
                if isinstance(resolve(target), type(sys)):  # an attribute of a module: a name it exports
                    record(f"{target}.{node.attr}")
                    continue
            if node.attr.startswith("_") and not is_dunder(node.attr) and node.attr not in own and node.attr in theirs:
                record(f".{node.attr}")
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                dotted = dotted_base(base, aliases)
                if dotted is None and isinstance(base, ast.Name):
                    dotted = inherited.get(base.id)
                if dotted is None:
                    continue
                base_class = resolve(dotted)
                for name in class_level_names(node.body):
                    if not is_dunder(name) and hasattr(base_class, name):
                        record(f"{dotted}.{name}")
    return uses


def class_level_names(body: list[ast.stmt]) -> list[str]:
    """Names a class body defines: methods and attributes (inside ``if``/``try`` blocks too)."""
    names: list[str] = []
    for item in body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(item.name)
        elif isinstance(item, ast.Assign):
            names.extend(target.id for target in item.targets if isinstance(target, ast.Name))
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.append(item.target.id)
        elif isinstance(item, (ast.If, ast.Try)):
            names.extend(class_level_names([*item.body, *item.orelse]))
    return names


def dotted_base(base: ast.expr, aliases: dict[str, str]) -> str | None:
    if isinstance(base, ast.Name) and base.id in aliases:
        return aliases[base.id]
    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id in aliases:
        return f"{aliases[base.value.id]}.{base.attr}"
    return None


def used() -> set[Use]:
    return {use for path in sources() for use in scan(path)}


@dataclass(frozen=True)
class Entry:
    file: str
    names: tuple[str, ...]
    tests: tuple[str, ...]


def documented() -> list[Entry]:
    """The rows of the table in docs/internals.md: | file | internals | why | proved by |."""
    entries = []
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        file, names, _what, _why, tests = cells
        entries.append(
            Entry(
                file.strip("`"),
                tuple(re.findall(r"`([\w.]+)`", names)),
                tuple(re.findall(r"`([\w/.]+::\w+)`", tests)),
            )
        )
    return entries


def covers(entry: Entry, use: Use) -> bool:
    if entry.file != use.file:
        return False
    if use.name.startswith("."):
        return any(name.endswith(use.name) for name in entry.names)
    return use.name in entry.names


# --- the list ------------------------------------------------------------------------------------


def test_the_scan_finds_what_aeros_is_known_to_use() -> None:
    """The scan itself works: it sees a private import, a private attribute and an override, also
    an override in a class deriving from Quart through a class of aeros (``WebServer``)."""
    names = {(use.file, use.name) for use in used()}
    assert ("aeros_core/app.py", "quart.Quart.dispatch_request") in names
    assert ("plugins/aeros_granian/aeros_granian/plugin.py", "granian._granian.SocketHolder") in names
    assert ("plugins/aeros_granian/aeros_granian/plugin.py", "._init_shared_socket") in names
    assert ("aeros_core/asgi.py", "quart.asgi.ASGIHTTPConnection._send_response") in names
    assert ("aeros_core/builtins/fast_json.py", "._prepare_response_obj") in names


def test_every_internal_aeros_uses_is_documented() -> None:
    entries = documented()
    assert entries, f"no table rows found in {DOC}"
    missing = sorted(
        f"{use.file}: {use.name}"
        for use in used()
        if not use.public and not any(covers(entry, use) for entry in entries)
    )
    assert not missing, "not in docs/internals.md (nor public, see PUBLIC in this file):\n" + "\n".join(missing)


def test_every_documented_internal_is_still_used() -> None:
    uses = used()
    stale = sorted(
        f"{entry.file}: {name}"
        for entry in documented()
        for name in entry.names
        if not any(covers(Entry(entry.file, (name,), ()), use) for use in uses)
    )
    assert not stale, "docs/internals.md lists what the source no longer uses:\n" + "\n".join(stale)
    public_unused = sorted(PUBLIC - {use.name for use in uses})
    assert not public_unused, f"PUBLIC names no longer used: {public_unused}"


def test_every_entry_names_tests_that_exist() -> None:
    for entry in documented():
        assert entry.tests, f"{entry.file}: no test proves {entry.names} active"
        for test in entry.tests:
            file, _, name = test.partition("::")
            source = (ROOT / file).read_text()
            assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{test} (for {entry.file}) does not exist"


# --- each fast path is active on the installed versions -----------------------------------------


def peer_of(obj: Any) -> Any:
    """The client address of the connection a server object serves (None when it has none)."""
    if isinstance(getattr(obj, "client", None), (tuple, list)):
        return tuple(obj.client)
    scope = getattr(obj, "scope", None)
    if isinstance(scope, dict) and scope.get("client"):
        return tuple(scope["client"])
    writer = getattr(obj, "writer", None)
    return tuple(writer.get_extra_info("peername")[:2]) if writer is not None else None


def instances_of(cls: type) -> list[str]:
    """Class names of the live objects that are instances of ``cls`` (its subclasses included)
    and serve the connection of the request being handled. Objects of other connections (an
    earlier test's, not yet collected, in the same xdist worker) are not counted."""
    from quart import request

    client = tuple(request.scope["client"])
    # type(obj), not isinstance: a dead weakref.proxy (one test_connection_limits's WebSocket test
    # leaves) raises ReferenceError on isinstance
    return sorted(
        type(obj).__name__ for obj in gc.get_objects() if issubclass(type(obj), cls) and peer_of(obj) == client
    )


def test_hypercorn_serves_each_connection_with_the_aeros_tcp_server() -> None:
    """aeros_worker_serve swaps Hypercorn's TCPServer: a real connection is served by AerosTCPServer."""
    from hypercorn.asyncio.tcp_server import TCPServer

    app = WebServer(__name__)

    @app.route("/servers")
    async def servers() -> dict:
        return {"servers": instances_of(TCPServer)}

    with app.run_in_thread(server="hypercorn", access_log_to_std=False) as server:
        answer = httpx.get(server.url + "/servers", timeout=10).json()
    assert answer == {"servers": ["AerosTCPServer"]}


def test_hypercorn_serves_http1_with_the_aeros_h11_protocol() -> None:
    """AerosTCPServer gives each HTTP/1 connection AerosH11Protocol, its requests AerosHTTPStream
    (the cheaper response path, hypercorn_h11.py)."""
    from hypercorn.protocol.h11 import H11Protocol
    from hypercorn.protocol.http_stream import HTTPStream

    app = WebServer(__name__)

    @app.route("/protocols")
    async def protocols() -> dict:
        return {"protocols": instances_of(H11Protocol), "streams": instances_of(HTTPStream)}

    with app.run_in_thread(server="hypercorn", access_log_to_std=False) as server:
        answer = httpx.get(server.url + "/protocols", timeout=10).json()
    assert answer == {"protocols": ["AerosH11Protocol"], "streams": ["AerosHTTPStream"]}


class RecordSends:
    """An ASGI wrapper (innermost) that keeps the messages the app sends."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper:
        def wrap(inner: Any) -> Any:
            async def recording(scope: dict, receive: Any, send: Any) -> None:
                async def keep(message: dict) -> None:
                    if scope["type"] == "http":
                        self.messages.append(message)
                    await send(message)

                await inner(scope, receive, keep)

            return recording

        return AsgiWrapper(0, wrap)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the lean connection needs Task.uncancel (3.11)")
def test_the_lean_connection_sends_an_in_memory_body_as_one_message() -> None:
    """LeanHTTPConnection (_create_request_from_scope, _send_response, DataBody) handles the request.

    Quart's own connection sends a body held in memory as a one-chunk stream closed by an empty
    message: three messages where the lean one sends two.
    """
    recorder = RecordSends()
    app = WebServer(__name__, plugins=[recorder])

    @app.route("/text")
    async def text() -> str:
        return "hello"

    with app.run_in_thread(server="hypercorn", access_log_to_std=False) as server:
        assert httpx.get(server.url + "/text", timeout=10).text == "hello"
    types = [(message["type"], message.get("more_body", False)) for message in recorder.messages]
    assert types == [("http.response.start", False), ("http.response.body", False)]
    assert recorder.messages[1]["body"] == b"hello"


@pytest.mark.skipif(not installed_backends("uvicorn"), reason="aeros-uvicorn is not installed")
def test_uvicorn_serves_each_connection_with_the_bounded_protocol() -> None:
    """The protocol class uvicorn uses for a real connection is aeros's HttpToolsProtocol subclass."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    app = WebServer(__name__)

    @app.route("/protocols")
    async def protocols() -> dict:
        return {"protocols": instances_of(HttpToolsProtocol)}

    with app.run_in_thread(server="uvicorn", access_log_to_std=False) as server:
        answer = httpx.get(server.url + "/protocols", timeout=10).json()
    assert answer == {"protocols": ["BoundedHttpToolsProtocol"]}


@pytest.mark.skipif(not installed_backends("uvicorn"), reason="aeros-uvicorn is not installed")
def test_uvicorn_answers_through_the_aeros_cycle() -> None:
    """Each request's cycle is aeros's AerosCycle, and its send takes its own path (it remembers
    the header pairs it checked; uvicorn's own send remembers nothing)."""
    import logging

    from aeros_uvicorn import protocol
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    app = WebServer(__name__)

    @app.route("/cycles")
    async def cycles() -> dict:
        return {"cycles": instances_of(RequestResponseCycle)}

    with app.run_in_thread(server="uvicorn", access_log_to_std=False) as server:
        # pytest's log capture gives the (non-propagating) access logger a handler, and uvicorn
        # logs access when it has one: AerosCycle then takes uvicorn's code (test_send.py)
        logging.getLogger("uvicorn.access").handlers.clear()
        protocol._lines.clear()
        answer = httpx.get(server.url + "/cycles", timeout=10).json()
    assert answer == {"cycles": ["AerosCycle"]}
    assert any(name.lower() == b"content-type" for name, _ in protocol._lines), protocol._lines


@pytest.mark.skipif(not installed_backends("uvicorn"), reason="aeros-uvicorn is not installed")
def test_uvicorn_leaves_the_signal_handlers_to_the_runner(script_server: Any) -> None:
    """RunnerOwnedServer.capture_signals: while uvicorn serves, SIGTERM is still the runner's."""
    server = script_server(
        """
        import signal
        from aeros import WebServer

        app = WebServer(__name__)

        @app.route("/pid")
        async def pid():
            return "ok"

        @app.route("/sigterm")
        async def sigterm():
            handler = signal.getsignal(signal.SIGTERM)
            return {"module": getattr(handler, "__module__", None), "name": getattr(handler, "__qualname__", None)}

        if __name__ == "__main__":
            app.run(port=0, server="uvicorn", access_log_to_std=False)
        """
    )
    url = server.wait_ready()
    handler = httpx.get(url + "/sigterm", timeout=10).json()
    # uvicorn's own capture_signals would have installed uvicorn.server.Server.handle_exit
    assert not (handler["module"] or "").startswith("uvicorn"), handler
    assert handler["name"] != "Server.handle_exit", handler


def listening_ports() -> set[int]:
    """TCP ports this process listens on (Linux: its socket inodes, found in /proc/net/tcp)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


@pytest.mark.skipif(not installed_backends("granian"), reason="aeros-granian is not installed")
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_granian_serves_the_runners_socket() -> None:
    """SocketHolder and _init_shared_socket: granian accepts on the runner's socket and binds none of its own."""
    app = WebServer(__name__)

    @app.route("/hello")
    async def hello() -> str:
        return "hello"

    before = listening_ports()
    with app.run_in_thread(server="granian", access_log_to_std=False) as server:
        assert httpx.get(server.url + "/hello", timeout=10).text == "hello"
        opened = listening_ports() - before
    assert opened == {server.port}


@pytest.mark.skipif(load_orjson() is None, reason="orjson is not installed")
async def test_fast_json_builds_responses_through_flasks_provider_internals() -> None:
    """FastJSONProvider.response (Flask's _app, _prepare_response_obj): orjson writes NaN as null."""
    app = WebServer(__name__)

    @app.route("/nan")
    async def nan() -> dict:
        return {"value": float("nan")}

    response = await app.test_client().get("/nan")
    assert await response.get_data() == b'{"value":null}\n'
