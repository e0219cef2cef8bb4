"""The shorter routed path (aeros_core/request_path.py, aeros_core/asgi.py) behaves as Quart does.

Each scenario runs on plain Quart and on WebServer, and the two must record the same thing:
functions and signal receivers registered after the first request, sessions, after_this_request,
streaming, JSON, a replaced ``asgi_app`` and the response timeout.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest
import quart
import werkzeug.exceptions
from quart import Blueprint, Quart, after_this_request, g, jsonify, request, session
from quart.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)

from aeros import WebServer
from aeros_core.asgi import LEAN_AVAILABLE, LeanHTTPConnection
from aeros_core.request_path import LeanRequestPath

KINDS = [Quart, WebServer]


def new_app(kind: type) -> Any:
    app = kind(__name__)

    @app.route("/hello")
    async def hello() -> str:
        return "Hello, World!"

    return app


async def fetch(app: Any, path: str = "/hello", **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    response = await app.test_client().get(path, **kwargs)
    # the date differs; request ids are aeros's own (on by default)
    headers = {
        key.lower(): value for key, value in response.headers.items() if key.lower() not in ("date", "x-request-id")
    }
    return response.status_code, headers, await response.get_data()


def empty_body_then(gone_after: float | None = None) -> Callable[[], Any]:
    """A server's ``receive``: an empty body at once, then the client stays (or goes after
    ``gone_after`` seconds)."""
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if gone_after is None:
            await asyncio.get_running_loop().create_future()
        await asyncio.sleep(gone_after or 0)
        return {"type": "http.disconnect"}

    return receive


async def on_both(scenario: Callable[[Any, list], Any]) -> list:
    """Run ``scenario(app, log)`` on Quart and on WebServer; the two logs, which must be equal."""
    logs = []
    for kind in KINDS:
        log: list = []
        await scenario(new_app(kind), log)
        logs.append(log)
    assert logs[0] == logs[1]
    return logs[1]


def test_webserver_uses_the_shorter_path() -> None:
    assert issubclass(WebServer, LeanRequestPath)
    assert WebServer.preprocess_request is not Quart.preprocess_request


async def test_skipped_steps_are_not_run_when_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing registered, Quart's step methods are not called; registered late, they are."""
    called: list[str] = []
    for name in ("preprocess_request", "do_teardown_request", "do_teardown_appcontext"):
        original = getattr(Quart, name)

        def spy(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
            called.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(Quart, name, spy)
    app = new_app(WebServer)
    await fetch(app)
    assert called == []

    @app.before_request
    async def before() -> None:
        pass

    @app.teardown_request
    async def teardown(exc: Any) -> None:
        pass

    @app.teardown_appcontext
    async def teardown_app(exc: Any) -> None:
        pass

    await fetch(app)
    assert sorted(called) == ["do_teardown_appcontext", "do_teardown_request", "preprocess_request"]


async def test_functions_registered_after_the_first_request_run() -> None:
    async def scenario(app: Any, log: list) -> None:
        log.append(await fetch(app))

        @app.url_value_preprocessor
        def values(endpoint: str | None, view_args: dict | None) -> None:
            log.append(("url_value_preprocessor", endpoint))

        @app.before_request
        async def before() -> None:
            g.seen = "g"
            log.append("before")

        @app.after_request
        async def after(response: Any) -> Any:
            response.headers["X-After"] = "1"
            log.append("after")
            return response

        @app.teardown_request
        async def teardown(exc: Any) -> None:
            log.append(("teardown_request", request.path, g.seen, exc))

        @app.teardown_appcontext
        def teardown_app(exc: Any) -> None:
            log.append(("teardown_appcontext", g.seen, exc))

        log.append(("response", await fetch(app)))

    log = await on_both(scenario)
    assert "before" in log and "after" in log
    assert ("teardown_request", "/hello", "g", None) in log
    assert ("teardown_appcontext", "g", None) in log
    responses = [entry[1] for entry in log if entry[0] == "response"]
    assert responses[0][1]["x-after"] == "1"


async def test_a_before_request_that_answers_and_blueprint_functions() -> None:
    async def scenario(app: Any, log: list) -> None:
        blueprint = Blueprint("bp", __name__)

        @blueprint.route("/inside")
        async def inside() -> str:
            return "inside"

        @blueprint.route("/open")
        async def open_view() -> str:
            return "open"

        @blueprint.before_request
        async def stop() -> Any:
            if request.path.endswith("/inside"):
                return "stopped", 403
            return None

        @blueprint.after_request
        async def mark(response: Any) -> Any:
            response.headers["X-Bp"] = "1"
            return response

        app.register_blueprint(blueprint, url_prefix="/bp")
        for path in ("/bp/inside", "/bp/open", "/hello"):
            log.append(await fetch(app, path))

    log = await on_both(scenario)
    assert log[0][0] == 403 and log[0][1]["x-bp"] == "1"
    assert log[1][2] == b"open"
    assert "x-bp" not in log[2][1]


async def test_signal_receivers_connected_late_are_called() -> None:
    async def scenario(app: Any, log: list) -> None:
        log.append(await fetch(app))

        async def started(sender: Any, **extra: Any) -> None:
            log.append(("started", request.path))

        async def finished(sender: Any, response: Any, **extra: Any) -> None:
            log.append(("finished", response.status_code))

        def tearing_down(sender: Any, exc: Any = None, **extra: Any) -> None:
            log.append(("request_tearing_down", exc))

        async def app_tearing_down(sender: Any, exc: Any = None, **extra: Any) -> None:
            log.append(("appcontext_tearing_down", exc))

        connections = [
            (request_started, started),
            (request_finished, finished),
            (request_tearing_down, tearing_down),
            (appcontext_tearing_down, app_tearing_down),
        ]
        for signal, receiver in connections:
            signal.connect(receiver, app)
        try:
            log.append(await fetch(app))
        finally:
            for signal, receiver in connections:
                signal.disconnect(receiver, app)

    log = await on_both(scenario)
    assert ("started", "/hello") in log
    assert ("finished", 200) in log
    assert ("request_tearing_down", None) in log
    assert ("appcontext_tearing_down", None) in log


async def test_contexts_are_pushed_and_popped_as_quart_does() -> None:
    """The request and app contexts (pushed and popped inline by WebServer): app-context signals
    connected late, ``g`` per request, teardown with ``g``, a request inside an app context already
    pushed, preserved contexts, a custom ``request_context`` and uploaded files closed."""

    assert not appcontext_pushed.receivers  # the shorter path is taken

    async def scenario(app: Any, log: list) -> None:
        uploads: list = []

        @app.route("/g")
        async def with_g() -> str:
            seen = getattr(g, "seen", None)
            g.seen = request.path
            return f"{seen}"

        @app.route("/upload", methods=["POST"])
        async def upload() -> str:
            files = await request.files
            uploads.append(files["file"])
            return files["file"].filename or ""

        @app.route("/fail")
        async def fail() -> str:
            raise RuntimeError("fails")

        log.append(await fetch(app, "/g"))
        log.append(await fetch(app, "/g"))  # a new g: the first request's is gone

        class OwnContext(quart.ctx.RequestContext):
            async def push(self) -> None:
                log.append("own context pushed")
                await super().push()

        app.request_context = lambda request_: OwnContext(app, request_)
        log.append(await fetch(app, "/g"))
        del app.request_context

        @app.teardown_appcontext
        async def teardown(exc: Any) -> None:
            log.append(("teardown_appcontext", getattr(g, "seen", None), type(exc).__name__))

        log.append(await fetch(app, "/g"))
        log.append(await fetch(app, "/fail"))
        async with app.app_context():
            g.seen = "outer"
            log.append(await fetch(app, "/g"))  # the test client's request runs in that app context
            log.append(g.seen)

        async with app.test_client() as client:  # preserves the request context
            await client.get("/g?x=1")
            log.append(("preserved", request.path, request.args.get("x")))

        app.testing = True  # the exception goes through the context's exit: teardown sees it
        log.append((await app.test_client().get("/fail")).status_code)
        app.config["PRESERVE_CONTEXT_ON_EXCEPTION"] = True
        try:
            log.append((await app.test_client().get("/fail")).status_code)
            log.append(("preserved after the exception", request.path))
        finally:
            app.config["PRESERVE_CONTEXT_ON_EXCEPTION"] = False
            app.testing = False

        response = await app.test_client().post(
            "/upload", files={"file": quart.datastructures.FileStorage(io.BytesIO(b"data"), filename="a.txt")}
        )
        log.append((response.status_code, await response.get_data(), [upload.stream.closed for upload in uploads]))

        # connected for any sender: blinker keeps a receiver disconnected from one sender in
        # ``receivers``, and the shorter path would then go Quart's way for the rest of the process
        def pushed(sender: Any, **extra: Any) -> None:
            log.append(("appcontext_pushed", sender is app))

        async def popped(sender: Any, **extra: Any) -> None:
            log.append(("appcontext_popped", sender is app))

        appcontext_pushed.connect(pushed)
        appcontext_popped.connect(popped)
        try:
            log.append(await fetch(app, "/g"))
        finally:
            appcontext_pushed.disconnect(pushed)
            appcontext_popped.disconnect(popped)
        assert not appcontext_pushed.receivers

    log = await on_both(scenario)
    assert ("appcontext_pushed", True) in log and ("appcontext_popped", True) in log
    assert ("teardown_appcontext", "/g", "NoneType") in log
    assert ("teardown_appcontext", None, "RuntimeError") in log
    assert ("preserved", "/g", "1") in log
    assert (200, b"a.txt", [True]) in log
    assert "own context pushed" in log


async def test_a_failing_finished_receiver_after_an_error_handler_is_logged_as_quart_does() -> None:
    async def scenario(app: Any, log: list) -> None:
        @app.route("/boom")
        async def boom() -> str:
            raise ValueError("boom")

        @app.errorhandler(ValueError)
        async def handled(error: Exception) -> Any:
            return "handled", 500

        log.append(await fetch(app, "/boom"))

    await on_both(scenario)


async def test_sessions_start_when_a_secret_key_is_set_late() -> None:
    async def scenario(app: Any, log: list) -> None:
        @app.route("/count")
        async def count() -> str:
            session["n"] = session.get("n", 0) + 1
            return str(session["n"])

        refused = await app.test_client().get("/count")  # no secret key: the null session refuses writes
        log.append(refused.status_code)
        app.secret_key = "not secret"
        client = app.test_client()
        first = await client.get("/count")
        second = await client.get("/count")
        log.append(("set-cookie" in first.headers, await first.get_data(), await second.get_data()))

    assert await on_both(scenario) == [500, (True, b"1", b"2")]


async def test_after_this_request() -> None:
    async def scenario(app: Any, log: list) -> None:
        @app.route("/once")
        async def once() -> str:
            @after_this_request
            async def mark(response: Any) -> Any:
                response.headers["X-Once"] = "yes"
                return response

            return "once"

        log.append(await fetch(app, "/once"))
        log.append(await fetch(app, "/hello"))

    log = await on_both(scenario)
    assert log[0][1]["x-once"] == "yes" and "x-once" not in log[1][1]


async def test_streaming_json_errors_and_methods() -> None:
    async def scenario(app: Any, log: list) -> None:
        @app.route("/stream")
        async def stream() -> Any:
            async def chunks() -> Any:
                for number in range(3):
                    yield f"chunk {number}\n"

            return chunks(), 200, {"X-Stream": "1"}

        @app.route("/json")
        async def json_view() -> Any:
            return {"text": "é ☃", "big": 2**70, "nested": [1.5, None, True], "z": 1, "a": 2}

        @app.route("/jsonify")
        async def jsonify_view() -> Any:
            return jsonify([1, "two", {"b": 1, "a": 0}])

        @app.route("/bytes")
        async def bytes_view() -> Any:
            return b"raw", 201

        @app.route("/fail")
        async def fail() -> Any:
            raise RuntimeError("view failed")

        for path in ("/stream", "/json", "/jsonify", "/bytes", "/fail", "/missing"):
            log.append(await fetch(app, path))
        log.append(await fetch(app, "/hello", headers={"Range": "bytes=0-4"}))
        response = await app.test_client().options("/hello")
        log.append((response.status_code, sorted(response.headers["Allow"].split(", "))))
        response = await app.test_client().post("/hello")
        log.append(response.status_code)

    log = await on_both(scenario)
    assert log[0][2] == b"chunk 0\nchunk 1\nchunk 2\n"
    assert log[4][0] == 500 and log[5][0] == 404


async def test_a_replaced_asgi_app_is_used_even_after_requests() -> None:
    async def scenario(app: Any, log: list) -> None:
        log.append(await fetch(app))
        inner = app.asgi_app

        async def middleware(scope: dict, receive: Any, send: Any) -> None:
            async def tagged(message: dict) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], (b"x-middleware", b"1")]}
                await send(message)

            await inner(scope, receive, tagged)

        app.asgi_app = middleware
        log.append(await fetch(app))

    log = await on_both(scenario)
    assert log[1][1]["x-middleware"] == "1"


@pytest.mark.skipif(not LEAN_AVAILABLE, reason="the lean connection needs Python 3.11")
async def test_a_send_that_outlasts_the_response_timeout_is_given_up_as_quart_does() -> None:
    """The body send blocks; the response's timeout ends the request without an error, on both."""
    for kind in KINDS:
        app = new_app(kind)

        @app.after_request
        async def short(response: Any) -> Any:
            response.timeout = 0.01
            return response

        sent: list[str] = []
        blocked = asyncio.Event()

        async def send(message: dict) -> None:
            sent.append(message["type"])  # noqa: B023 (called within its own iteration only)
            if message["type"] == "http.response.body":
                blocked.set()  # noqa: B023
                await asyncio.get_running_loop().create_future()  # never completes

        scope = scope_with([(b"host", b"localhost")], method="GET")
        await asyncio.wait_for(app.asgi_app(scope, empty_body_then(), send), timeout=30)
        assert blocked.is_set()
        assert sent == ["http.response.start", "http.response.body"]
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def record_sending(
    kind: type, timeout: float | None, waits: dict[str, float], gone_after: float | None = None
) -> list:
    """Serve /hello on a ``kind`` app through a send that sleeps ``waits[message type]`` seconds;
    what was sent (and whether the request ended by an error) is the record."""
    app = new_app(kind)
    assert (type(app).asgi_http_class is LeanHTTPConnection) == (kind is WebServer)
    app.config["RESPONSE_TIMEOUT"] = timeout
    record: list = []

    async def send(message: dict) -> None:
        delay = waits.get(message["type"])
        if delay is not None:
            await asyncio.sleep(delay)
        record.append((message["type"], message.get("body")))

    try:
        scope = scope_with([(b"host", b"localhost")], method="GET")
        await asyncio.wait_for(app.asgi_app(scope, empty_body_then(gone_after), send), 30)
    except BaseException as error:  # noqa: BLE001 (the record says what ended the request)
        record.append(type(error).__name__)
    record.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
    # Quart sends an in-memory body as a chunk plus an empty closing message, aeros as one message:
    # the same bytes on the wire, so the bodies are compared joined
    sent = [entry for entry in record if type(entry) is tuple]
    heads = [entry for entry in sent if entry[0] == "http.response.start"]
    body = b"".join(entry[1] or b"" for entry in sent if entry[0] == "http.response.body")
    return [len(heads), body, *(entry for entry in record if type(entry) is not tuple)]


SENDING_CASES = {
    "every send at once": (60.0, {}, None),
    "no timeout, sends at once": (None, {}, None),
    "the head waits, then the rest": (5.0, {"http.response.start": 0.01}, None),
    "the body waits, then completes": (5.0, {"http.response.body": 0.01}, None),
    "the head waits past the timeout": (0.05, {"http.response.start": 5.0}, None),
    "the body waits past the timeout": (0.05, {"http.response.body": 5.0}, None),
    "a timeout of 0": (0, {}, None),
    "a negative timeout, a waiting send": (-1, {"http.response.start": 0.01}, None),
    "the client goes while the head waits": (5.0, {"http.response.start": 5.0}, 0.02),
}


@pytest.mark.skipif(not LEAN_AVAILABLE, reason="the lean connection needs Python 3.11")
@pytest.mark.parametrize("case", SENDING_CASES)
async def test_sending_in_the_views_task_is_quarts_sending(case: str) -> None:
    """The lean connection sends in the view's task until a send waits, then under the timeout:
    what is sent, and how the request ends, are Quart's in every case."""
    timeout, waits, gone_after = SENDING_CASES[case]
    quarts = await record_sending(Quart, timeout, waits, gone_after)
    leans = await record_sending(WebServer, timeout, waits, gone_after)
    assert leans == quarts
    if case.startswith("every") or "then" in case:
        assert leans[:2] == [1, b"Hello, World!"]


class BareAwaitable:
    """A server's awaitable whose ``__await__`` is a bare iterator, without ``send`` or ``throw``
    (granian's ``PyFutureAwaitable`` is one): it steps the coroutine ``made``."""

    def __init__(self, made: Any) -> None:
        self.made = made

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.made.send(None)  # StopIteration(value) ends the await with the value


async def record_receiving(kind: type, messages: list[Any], view_sleeps: float, bare: bool = False) -> list:
    """A view that reads the body, then sleeps; ``receive`` gives ``messages`` in turn (a number
    is a pause in seconds before the next, an exception is raised, the end waits forever)."""
    app = quart_app = kind(__name__)
    record: list = []

    @quart_app.route("/upload", methods=["POST"])
    async def upload() -> str:
        data = await request.get_data()
        record.append(("read", data))
        await asyncio.sleep(view_sleeps)
        record.append("view done")
        return "ok"

    queue = list(messages)

    def receive() -> Any:
        return BareAwaitable(next_message()) if bare else next_message()

    async def next_message() -> dict:
        while queue:
            item = queue.pop(0)
            if isinstance(item, (int, float)):
                await asyncio.sleep(item)
            elif isinstance(item, BaseException):
                raise item
            else:
                return item
        await asyncio.get_running_loop().create_future()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            record.append(("status", message["status"]))

    try:
        await asyncio.wait_for(app.asgi_app(scope_with([(b"host", b"localhost")], path="/upload"), receive, send), 30)
    except BaseException as error:  # noqa: BLE001 (the record says what ended the request)
        record.append(type(error).__name__)
    record.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
    return record


def body(data: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": data, "more_body": more}


RECEIVING_CASES = {
    "the whole body at once": ([body(b"abc")], 0),
    "the whole body at once, a view that waits": ([body(b"abc")], 0.02),
    "the body in two parts, the second late": ([body(b"ab", True), 0.02, body(b"c")], 0),
    "the first message late": ([0.02, body(b"abc")], 0),
    "the client gone before the view": ([{"type": "http.disconnect"}], 0),
    "the client gone while the view waits": ([body(b"abc"), 0.02, {"type": "http.disconnect"}], 5),
    "the server's receive fails at once": ([RuntimeError("receive failed")], 0.02),
    "the server's receive fails later": ([body(b"abc"), 0.02, RuntimeError("receive failed")], 5),
}


@pytest.mark.skipif(not LEAN_AVAILABLE, reason="the lean connection needs Python 3.11")
@pytest.mark.parametrize("bare", [False, True], ids=["coroutine", "bare iterator"])
@pytest.mark.parametrize("case", RECEIVING_CASES)
async def test_receiving_is_quarts_receiving(case: str, bare: bool) -> None:
    """The lean connection takes a body that is already there at once and watches for the client
    later: what the view reads and sends, and how the request ends, are Quart's in every case,
    also when the server's ``receive`` gives an awaitable without ``send``/``throw``."""
    messages, view_sleeps = RECEIVING_CASES[case]
    quarts = await record_receiving(Quart, messages, view_sleeps, bare)
    leans = await record_receiving(WebServer, messages, view_sleeps, bare)
    assert leans == quarts
    if "gone" not in case and "fails" not in case:
        assert leans[:2] == [("read", b"abc"), "view done"]


def scope_with(headers: list[tuple[bytes, bytes]], **changes: Any) -> dict:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/hello",
        "raw_path": b"/hello",
        "query_string": b"a=1&b=2",
        "root_path": "",
        "headers": headers,
        "client": ("10.0.0.1", 5000),
        "server": ("127.0.0.1", 443),
        "extensions": {},
    }
    scope.update(changes)
    return scope


HEADER_CASES = {
    "plain": [(b"host", b"example.com"), (b"user-agent", b"test"), (b"x-repeated", b"1"), (b"X-Repeated", b"2")],
    "content-length": [(b"host", b"h"), (b"content-length", b"42")],
    "two content-lengths": [(b"content-length", b"7"), (b"content-length", b"9")],
    "invalid content-length": [(b"content-length", b"abc")],
    "negative content-length": [(b"content-length", b"-5")],
    "chunked": [(b"content-length", b"10"), (b"transfer-encoding", b"gzip, chunked")],
    "not chunked": [(b"content-length", b"10"), (b"Transfer-Encoding", b"gzip")],
    "latin-1 value": [(b"x-name", "caf\xe9".encode("latin1"))],
    "none": [],
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"http_version": "1.0"},
        {"client": None},
        {"root_path": "/root", "path": "/root/hello"},
        {"path": "x"},
        {"method": "post", "path": "//double"},
    ],
    ids=["1.1", "1.0", "no client", "root path", "relative path", "lower-case method"],
)
def test_the_lean_request_is_quarts(case: str, changes: dict) -> None:
    """Headers, content length, path and the rest equal what Quart's connection builds."""
    app = new_app(WebServer)
    scope = scope_with(HEADER_CASES[case], **changes)

    def send(message: Any) -> None:
        return None

    ours = LeanHTTPConnection(app, scope)._create_request_from_scope(send)
    quarts = quart.asgi.ASGIHTTPConnection(app, scope)._create_request_from_scope(send)
    assert type(ours) is type(quarts)
    assert list(ours.headers.items()) == list(quarts.headers.items())
    for name in ("content_length", "path", "root_path", "method", "scheme", "query_string", "http_version", "host"):
        assert getattr(ours, name) == getattr(quarts, name), name
    assert ours.args == quarts.args
    assert ours.body._must_raise == quarts.body._must_raise
    # every attribute the constructors set, in their order (what differs per object: compared by kind)
    assert list(vars(ours)) == list(vars(quarts))
    for name, value in vars(quarts).items():
        mine = vars(ours)[name]
        assert type(mine) is type(value), name
        if name == "body":
            assert (mine._data, mine._max_content_length, type(mine._must_raise)) == (
                value._data,
                value._max_content_length,
                type(value._must_raise),
            )
        elif name == "_send_push_promise":
            assert (mine.func.__func__, mine.args) == (value.func.__func__, value.args)
        elif name != "_parsing_lock":
            assert mine == value, name


@pytest.mark.parametrize("where", ["header", "client"])
def test_a_newline_in_a_header_value_raises_as_in_quart(where: str) -> None:
    app = new_app(WebServer)
    if where == "header":
        scope = scope_with([(b"x-bad", b"a\r\nb")])
    else:
        scope = scope_with([], client=("bad\nhost", 1))
    with pytest.raises(ValueError, match="newline") as quarts:
        quart.asgi.ASGIHTTPConnection(app, scope)._create_request_from_scope(lambda message: None)
    with pytest.raises(ValueError, match="newline") as ours:
        LeanHTTPConnection(app, scope)._create_request_from_scope(lambda message: None)
    assert str(ours.value) == str(quarts.value)


async def test_a_body_larger_than_max_content_length_is_refused_as_in_quart() -> None:
    async def scenario(app: Any, log: list) -> None:
        app.config["MAX_CONTENT_LENGTH"] = 4

        @app.route("/upload", methods=["POST"])
        async def upload() -> str:
            return str(len(await request.get_data()))

        client = app.test_client()
        for body in (b"abc", b"abcdefgh"):
            response = await client.post("/upload", data=body)
            log.append((response.status_code, await response.get_data()))

    assert [status for status, _ in await on_both(scenario)] == [200, 413]


def test_the_lean_request_path_is_taken_for_an_ordinary_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any, send: Any) -> Any:
        raise AssertionError("Quart's _create_request_from_scope was called")

    monkeypatch.setattr(quart.asgi.ASGIHTTPConnection, "_create_request_from_scope", refuse)
    scope = scope_with(HEADER_CASES["content-length"])
    request_ = LeanHTTPConnection(new_app(WebServer), scope)._create_request_from_scope(lambda message: None)
    assert request_.content_length == 42
    with pytest.raises(AssertionError, match="was called"):
        LeanHTTPConnection(new_app(WebServer), scope_with([], path="x"))._create_request_from_scope(lambda m: None)


@pytest.mark.parametrize("value", ["Hello, World!", "", "é", b"raw bytes", b""])
async def test_make_response_for_text_and_bytes_is_quarts(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    quart_app, aeros_app = new_app(Quart), new_app(WebServer)
    async with quart_app.app_context():
        expected = await quart_app.make_response(value)
    original = Quart.make_response

    async def refuse(self: Any, result: Any) -> Any:
        raise AssertionError("Quart's make_response was called")

    monkeypatch.setattr(Quart, "make_response", refuse)
    async with aeros_app.app_context():
        made = await aeros_app.make_response(value)
    assert type(made) is type(expected)
    assert list(made.headers.items()) == list(expected.headers.items())
    assert list(vars(made)) == list(vars(expected))  # the same attributes, set in the same order
    for name in ("_status", "_status_code", "timeout"):
        assert getattr(made, name) == getattr(expected, name)
    assert type(made.response) is type(expected.response)
    assert vars(made.response) == vars(expected.response)
    assert (made.status, made.mimetype, await made.get_data()) == (
        expected.status,
        expected.mimetype,
        await expected.get_data(),
    )

    class OwnResponse(quart.Response):
        default_mimetype = "text/plain"

    aeros_app.response_class = OwnResponse  # another class: Quart's method, which is refused here
    with pytest.raises(AssertionError, match="was called"):
        await aeros_app.make_response(value)
    monkeypatch.setattr(Quart, "make_response", original)
    assert (await aeros_app.make_response(value)).mimetype == "text/plain"


ADAPTER_FIELDS = ("server_name", "script_name", "subdomain", "url_scheme", "path_info", "default_method", "query_args")


@pytest.mark.parametrize(
    "scheme, host",
    [
        ("http", "example.com"),
        ("http", "Example.COM:80"),
        ("https", "example.com:443"),
        ("https", "example.com:8443"),
        ("http", "bücher.example"),
        ("http", "127.0.0.1:8000"),
        ("http", None),  # no Host header: the server's address
        ("http", "bad host!"),  # werkzeug makes it ""
        ("http", "example.com:99999"),
    ],
)
@pytest.mark.parametrize("root_path", ["", "/prefix"])
async def test_url_adapters_equal_quarts_on_first_and_later_requests(
    scheme: str, host: str | None, root_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = [(b"host", host.encode())] if host is not None else []
    scope = scope_with(headers, scheme=scheme, root_path=root_path, path=f"{root_path}/hello", method="GET")
    quart_app, aeros_app = new_app(Quart), new_app(WebServer)
    quart_request = quart.asgi.ASGIHTTPConnection(quart_app, scope)._create_request_from_scope(lambda m: None)
    expected = quart_app.create_url_adapter(quart_request)
    calls: list[int] = []
    original = Quart.create_url_adapter

    def counting(self: Any, request_: Any) -> Any:
        calls.append(1)
        return original(self, request_)

    monkeypatch.setattr(Quart, "create_url_adapter", counting)
    for _ in range(3):
        request_ = LeanHTTPConnection(aeros_app, scope)._create_request_from_scope(lambda m: None)
        adapter = aeros_app.create_url_adapter(request_)
        assert type(adapter) is type(expected)
        assert adapter.map is aeros_app.url_map
        for name in ADAPTER_FIELDS:
            assert getattr(adapter, name) == getattr(expected, name), name
        assert adapter.match(return_rule=True)[0].endpoint == "hello"
        assert adapter.build("hello", force_external=True) == expected.build("hello", force_external=True)
    assert len(calls) == 1  # Quart's, for the first request of this host only


@pytest.mark.filterwarnings("ignore:Current server name")  # Quart warns of other.org, on both
async def test_url_adapters_with_server_name_or_subdomain_matching_are_quarts() -> None:
    async def scenario(app: Any, log: list) -> None:
        app.config["SERVER_NAME"] = "example.com"

        @app.route("/where")
        async def where() -> str:
            return quart.url_for("where", _external=True)

        for host in ("example.com", "api.example.com", "other.org"):
            log.append(await fetch(app, "/where", headers={"host": host}))

    log = await on_both(scenario)
    assert log[0][2] == b"http://example.com/where"
    assert log[2][0] == 404


async def test_an_undecodable_host_is_refused_as_in_quart() -> None:
    async def scenario(app: Any, log: list) -> None:
        for _ in range(2):
            try:
                log.append(await fetch(app, "/hello", headers={"host": "a" * 70 + ".example"}))
            except Exception as error:  # Quart: BadHost from creating the request context
                log.append(type(error).__name__)

    assert await on_both(scenario) == ["BadHost", "BadHost"]


async def test_trusted_hosts_are_checked_on_every_request_as_quart_does() -> None:
    async def scenario(app: Any, log: list) -> None:
        log.append((await app.test_client().get("/hello", headers={"Host": "evil.example"})).status_code)

        class Guarded(app.request_class):  # type: ignore[name-defined,misc]
            trusted_hosts = ["good.example"]

        app.request_class = Guarded
        for host in ("good.example", "evil.example", "good.example", "evil.example"):
            try:
                log.append((await app.test_client().get("/hello", headers={"Host": host})).status_code)
            except werkzeug.exceptions.SecurityError:  # raised before the request is handled, in Quart
                log.append("SecurityError")

    assert await on_both(scenario) == [200, 200, "SecurityError", 200, "SecurityError"]


async def test_url_matching_with_remembered_rules_is_quarts() -> None:
    """WebServer's map remembers the rule of a path without arguments: every answer stays Quart's,
    for repeated paths, methods, HEAD, redirects, 404/405, defaults, rules added later and views
    or preprocessors that change ``view_args``."""

    async def scenario(app: Any, log: list) -> None:
        @app.route("/fixed")
        async def fixed(**values: Any) -> str:
            seen = sorted(request.view_args)
            request.view_args["touched"] = True  # a fresh dict each request: never seen by the next
            return f"{request.url_rule.rule} {request.endpoint} {seen}"

        @app.route("/page", defaults={"number": 1})
        @app.route("/page/<int:number>")
        async def page(number: int) -> str:
            return f"page {number}"

        @app.route("/dir/")
        async def directory() -> str:
            return "dir"

        @app.route("/only-post", methods=["POST"])
        async def only_post() -> str:
            return "posted"

        async def record(method: str, path: str) -> None:
            response = await getattr(app.test_client(), method)(path)
            log.append(
                (method, path, response.status_code, response.headers.get("Location"), await response.get_data())
            )

        for _ in range(2):
            for method, path in [
                ("get", "/fixed"),
                ("head", "/fixed"),
                ("post", "/fixed"),
                ("options", "/fixed"),
                ("get", "/page"),
                ("get", "/page/1"),  # redirected to /page (the rule with the default)
                ("get", "/page/7"),
                ("get", "/dir"),  # redirected to /dir/
                ("get", "/dir/"),
                ("get", "/only-post"),
                ("post", "/only-post"),
                ("get", "/missing"),
            ]:
                await record(method, path)

        async def fixed_again() -> str:
            return "the added rule"

        app.add_url_rule("/fixed", "fixed_again", fixed_again, methods=["POST"])
        await record("post", "/fixed")
        await record("get", "/fixed")

        @app.url_value_preprocessor
        def drop(endpoint: Any, values: Any) -> None:
            if values is not None:
                values["preprocessed"] = endpoint

        await record("get", "/fixed")
        await record("get", "/fixed")

    log = await on_both(scenario)
    answers = [(method, path, status, location) for method, path, status, location, _ in log]
    assert answers[:12] == answers[12:24]  # the same answers the second time round
    assert answers[:12] == [
        ("get", "/fixed", 200, None),
        ("head", "/fixed", 200, None),
        ("post", "/fixed", 405, None),
        ("options", "/fixed", 200, None),
        ("get", "/page", 200, None),
        ("get", "/page/1", 308, "http://localhost/page"),
        ("get", "/page/7", 200, None),
        ("get", "/dir", 308, "http://localhost/dir/"),
        ("get", "/dir/", 200, None),
        ("get", "/only-post", 405, None),
        ("post", "/only-post", 200, None),
        ("get", "/missing", 404, None),
    ]
    bodies = [body for *_, body in log]
    assert bodies[0] == bodies[12] == b"/fixed fixed []"
    assert bodies[24:] == [
        b"the added rule",
        b"/fixed fixed []",
        b"/fixed fixed ['preprocessed']",
        b"/fixed fixed ['preprocessed']",
    ]


async def test_webserver_matches_through_its_map() -> None:
    """The remembered rules are used (werkzeug's matcher is not run) and forgotten when a rule is added."""
    from aeros_core.request_path import STATIC_MATCHES_LIMIT, LeanMap

    app = new_app(WebServer)
    assert type(app.url_map) is LeanMap
    await fetch(app)
    assert list(app.url_map.static_matches.values()) == [app.url_map._rules_by_endpoint["hello"][0]]
    ((key, _),) = app.url_map.static_matches.items()
    app.url_map.static_matches[key] = app.url_map._rules_by_endpoint["static"][0]
    # the static files view, as remembered, without the file name it needs: Quart's 500
    assert (await app.test_client().get("/hello")).status_code == 500
    app.add_url_rule("/other", "other", lambda: "other")
    assert not app.url_map.static_matches
    assert (await fetch(app))[2] == b"Hello, World!"
    for number in range(STATIC_MATCHES_LIMIT + 10):  # client paths: the memory stays bounded
        app.add_url_rule(f"/n{number}", f"n{number}", lambda: "n")
    for number in range(STATIC_MATCHES_LIMIT + 10):
        await app.test_client().get(f"/n{number}")
    assert len(app.url_map.static_matches) == STATIC_MATCHES_LIMIT


async def test_what_clients_vary_is_remembered_within_bounds() -> None:
    """Header names, Host headers and paths come from clients: what is learnt from them stays
    bounded, and requests beyond the bound are still answered as Quart answers them."""
    from aeros_core import asgi
    from aeros_core.request_path import BOUND_HOSTS_LIMIT

    app = new_app(WebServer)
    for number in range(asgi.TITLED_LIMIT + 20):
        scope = scope_with([(f"x-name-{number}".encode(), b"value")])
        made = LeanHTTPConnection(app, scope)._create_request_from_scope(lambda message: None)
        assert list(made.headers.items())[-1] == (f"X-Name-{number}", "value")
    assert len(asgi._TITLED) <= asgi.TITLED_LIMIT
    for number in range(BOUND_HOSTS_LIMIT + 20):
        host = f"host-{number}.example"
        response = await app.test_client().get("/hello", headers={"Host": host})
        assert response.status_code == 200
    assert app._bound_hosts is not None and len(app._bound_hosts) == BOUND_HOSTS_LIMIT
    async with app.test_request_context("/hello", headers={"Host": "late.example"}):
        assert quart.url_for("hello", _external=True) == "http://late.example/hello"
