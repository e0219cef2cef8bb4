"""AerosCycle.send: the bytes and errors of uvicorn's own ``RequestResponseCycle.send``.

Two servers in one thread serve the same raw ASGI app: aeros's uvicorn backend
(:class:`~aeros_uvicorn.plugin.UvicornBackend`, its protocol and :class:`AerosCycle`) and plain
uvicorn with its own httptools protocol. Raw sockets compare what each writes (the Date value
aside). The cycles are also driven directly, with a transport that records writes, against
Hypothesis's header lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from aeros_uvicorn import protocol
from aeros_uvicorn.plugin import UvicornBackend
from aeros_uvicorn.protocol import AerosCycle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from aeros_core.runner.settings import ServerSettings

TIMEOUT = 5.0
END = b"GET /end HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
CACHE_HIT = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"5"),
    (b"etag", b'"5d41402abc4b2a76"'),
    (b"x-cache", b"HIT"),
]

#: path -> (status, headers, body messages); a body message is ``(body, more_body)``
RESPONSES: dict[str, tuple[int, Any, list[tuple[bytes, bool]]]] = {
    "/end": (200, [(b"content-length", b"3")], [(b"end", False)]),
    "/text": (200, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"5")], [(b"hello", False)]),
    "/json": (200, [(b"content-type", b"application/json"), (b"content-length", b"10")], [(b'{"a": 123}', False)]),
    "/no-content": (204, [], [(b"", False)]),
    "/not-modified": (304, [(b"etag", b'"abc"')], [(b"", False)]),
    "/stream": (200, [(b"content-type", b"text/plain")], [(b"one", True), (b"", True), (b"two", True), (b"", False)]),
    "/chunked": (200, [(b"Transfer-Encoding", b"Chunked")], [(b"abc", True), (b"de", False)]),
    "/te-gzip": (200, [(b"transfer-encoding", b"gzip"), (b"content-length", b"2")], [(b"ok", False)]),
    "/close": (200, [(b"connection", b"close"), (b"content-length", b"2")], [(b"ok", False)]),
    "/close-list": (200, [(b"Connection", b"keep-alive, CLOSE "), (b"content-length", b"2")], [(b"ok", False)]),
    "/keep-alive": (200, [(b"connection", b"keep-alive"), (b"content-length", b"2")], [(b"ok", False)]),
    "/mixed-case": (
        200,
        [(b"Content-Type", b"text/plain"), (b"X-Cache", b"HIT"), (b"ETag", b'"x"'), (b"CONTENT-LENGTH", b"2")],
        [(b"ok", False)],
    ),
    "/many": (
        200,
        [(b"x-header-%d" % i, b"value %d" % i) for i in range(40)] + [(b"content-length", b"2")],
        [(b"ok", False)],
    ),
    "/repeated": (
        200,
        [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"set-cookie", b"a=1"), (b"content-length", b"0")],
        [(b"", False)],
    ),
    "/latin-1": (
        200,
        [(b"x-tab", b"a\tb"), (b"x-latin", "café ÿ é".encode("latin-1")), (b"x-empty", b""), (b"content-length", b"0")],
        [(b"", False)],
    ),
    "/two-lengths": (200, [(b"content-length", b"2"), (b"Content-Length", b"7")], [(b"ok", False)]),
    "/two-lengths-lower": (200, [(b"content-length", b"2"), (b"content-length", b"7")], [(b"ok", False)]),
    "/chunked-then-length": (200, [(b"transfer-encoding", b"chunked"), (b"content-length", b"2")], [(b"ok", False)]),
    "/lists": (200, [[b"x-list", b"1"], [b"content-length", b"2"]], [(b"ok", False)]),
    "/tuple-of-pairs": (200, ((b"x-tuple", b"1"), (b"content-length", b"2")), [(b"ok", False)]),
    "/bytearray": (200, [(bytearray(b"x-ba"), bytearray(b"1")), (b"content-length", b"2")], [(b"ok", False)]),
    "/long": (
        200,
        [(b"content-security-policy", b"default-src 'self' " * 40), (b"content-length", b"0")],
        [(b"", False)],
    ),
    "/cached": (200, CACHE_HIT, [(b"hello", False)]),  # plus age and x-request-id, varying (app below)
    "/short": (200, [(b"content-length", b"5")], [(b"hi", False)]),  # shorter than its length: an error
    # refused by uvicorn's checks
    "/bad-name-space": (200, [(b"x bad", b"1")], [(b"", False)]),
    "/bad-name-colon": (200, [(b"x-bad:", b"1")], [(b"", False)]),
    "/bad-name-cr": (200, [(b"x-bad\r", b"1")], [(b"", False)]),
    "/bad-name-empty-ok": (200, [(b"", b"1"), (b"content-length", b"0")], [(b"", False)]),
    "/bad-value-crlf": (200, [(b"x-a", b"ok\r\nx-evil: 1")], [(b"", False)]),
    "/bad-value-lf": (200, [(b"x-a", b"ok\nx-evil: 1")], [(b"", False)]),
    "/bad-value-nul": (200, [(b"x-a", b"a\x00b")], [(b"", False)]),
    "/bad-value-del": (200, [(b"X-A", b"a\x7f")], [(b"", False)]),
    "/bad-length": (200, [(b"content-length", b"five")], [(b"", False)]),
    "/valid-a": (200, [(b"x-a", b"ok"), (b"X-A", b"ok"), (b"content-length", b"0")], [(b"", False)]),
}
HOSTILE = sorted(path for path in RESPONSES if path.startswith("/bad-") and not path.endswith("-ok"))

#: what send raised, per server port: (path, exception class name, message)
raised: dict[int, list[tuple[str, str, str]]] = {}


async def raw_app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/cycle":  # the cycle class that serves this request
        cycle = send.__self__
        name = b"%s access_log=%s" % (type(cycle).__name__.encode(), str(cycle.access_log).encode())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(name))]})
        await send({"type": "http.response.body", "body": name})
        return
    if path == "/echo":  # the request's body, read in as many messages as it comes in
        received = b""
        while True:
            message = await receive()
            received += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-length", b"%d" % len(received))]})
        await send({"type": "http.response.body", "body": received})
        return
    if path == "/varying":  # ?n: values (and names) that change with n
        n = int(scope["query_string"] or b"0")
        status, headers, bodies = (
            200,
            [(b"x-n", b"%d" % n), (b"x-name-%d" % (n % 50), b"v"), (b"content-length", b"0")],
            [(b"", False)],
        )
    else:
        status, headers, bodies = RESPONSES[path]
    if path == "/cached":
        query = scope["query_string"]
        headers = [*headers, (b"age", query or b"0"), (b"x-request-id", b"%032x" % hash(query))]
    messages = [{"type": "http.response.start", "status": status, "headers": headers}]
    messages += [{"type": "http.response.body", "body": body, "more_body": more} for body, more in bodies]
    for message in messages:
        try:
            await send(message)
        except Exception as error:
            raised.setdefault(scope["server"][1], []).append((path, type(error).__name__, str(error)))
            raise


@contextlib.contextmanager
def two_servers(app: Any = raw_app) -> Iterator[tuple[int, int]]:
    """(aeros's port, plain uvicorn's port), both serving ``app`` in one thread."""
    sockets = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        sockets.append(sock)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: list[asyncio.Event] = []
    errors: list[BaseException] = []

    async def main() -> None:
        stopped = asyncio.Event()
        stop.append(stopped)
        server_settings = ServerSettings(host="127.0.0.1", port=0, server="uvicorn", access_log_to_std=False)
        aeros_served = asyncio.ensure_future(UvicornBackend().serve(app, server_settings, [sockets[0]], stopped.wait))
        plain = uvicorn.Server(
            uvicorn.Config(
                app,
                http="httptools",
                lifespan="on",
                log_config=None,
                access_log=False,
                interface="asgi3",
                proxy_headers=False,
            )
        )
        plain_served = asyncio.ensure_future(plain.serve(sockets=[sockets[1]]))
        while not plain.started:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # aeros's backend: started as well (the first request would wait anyway)
        started.set()
        await stopped.wait()
        plain.should_exit = True
        await asyncio.gather(aeros_served, plain_served)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException as error:
            errors.append(error)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(15)
    assert not errors, errors
    try:
        yield sockets[0].getsockname()[1], sockets[1].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(15)
        for sock in sockets:
            sock.close()
    assert not errors, errors


def exchange(port: int, payload: bytes) -> bytes:
    """Everything the server writes after ``payload``, until it closes."""
    # Both servers switch uvicorn's access log off (its logger: no handler, not propagating), but
    # pytest's log capture attaches its handler to every non-propagating logger at the start of
    # each test phase, and a connection logs access when that logger has a handler (both take
    # uvicorn's own code then, AerosCycle's included): not what is under test here.
    logging.getLogger("uvicorn.access").handlers.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        received = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return received
            received += data


def without_date(data: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r\n]*\r\n", b"\r\ndate: -\r\n", data)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int]]:
    with two_servers() as ports:
        yield ports


@pytest.fixture
def uvicorn_errors() -> Iterator[list[logging.LogRecord]]:
    """The records logged on ``uvicorn.error`` meanwhile (by both servers)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def requests_for(path: str) -> list[bytes]:
    return [
        b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode() + END,  # keep-alive, then /end pipelined
        b"HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode() + END,
        b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode(),  # keep-alive off
        b"GET %s HTTP/1.0\r\n\r\n" % path.encode(),  # HTTP/1.0: closes after the response
        b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % path.encode() + END,
    ]


def assert_same_bytes(servers: tuple[int, int], payload: bytes) -> bytes:
    aeros_port, plain_port = servers
    ours, theirs = exchange(aeros_port, payload), exchange(plain_port, payload)
    assert without_date(ours) == without_date(theirs), payload
    return ours


@pytest.mark.parametrize("path", sorted(RESPONSES))
def test_the_bytes_on_the_wire_are_uvicorns(servers, path):
    for _ in range(2):  # the second time, the pairs remembered the first
        for payload in requests_for(path):
            assert_same_bytes(servers, payload)


def test_request_bodies_pipelined_or_not_are_read_as_in_uvicorn(servers):
    post = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    chunked = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    big = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + b"b" * 200_000
    for payload in [post + END, chunked + END, post + chunked + post + END, big + post + END]:
        reply = assert_same_bytes(servers, payload)
        assert reply.count(b"HTTP/1.1 200 OK") == payload.count(b"HTTP/1.1\r\n")


def test_a_cache_hit_with_changing_values_is_uvicorns(servers):
    payload = b"".join(b"GET /cached?%d HTTP/1.1\r\nHost: t\r\n\r\n" % n for n in range(30)) + END
    reply = assert_same_bytes(servers, payload)
    assert reply.count(b"HTTP/1.1 200 OK") == 31
    assert b"x-cache: HIT\r\n" in reply and b"age: 29\r\n" in reply


def test_the_fast_path_serves_aeros_requests(servers):
    aeros_port, plain_port = servers
    request = b"GET /cycle HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    assert exchange(aeros_port, request).endswith(b"\r\n\r\nAerosCycle access_log=False")
    assert exchange(plain_port, request).endswith(b"\r\n\r\nRequestResponseCycle access_log=False")
    # a pipelined request starts later (uvicorn's on_response_complete): also an AerosCycle
    pipelined = b"GET /cycle HTTP/1.1\r\nHost: t\r\n\r\n" + request
    assert exchange(aeros_port, pipelined).count(b"AerosCycle access_log=False") == 2
    # and its own path, not uvicorn's (which remembers nothing)
    protocol._lines.clear()
    exchange(aeros_port, b"GET /text HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert protocol._lines == {
        (b"content-type", b"text/plain; charset=utf-8"): b"content-type: text/plain; charset=utf-8\r\n"
    }


def test_the_cycle_copied_has_all_of_uvicorns_attributes():
    """_start_asgi_task copies CYCLE_ATTRIBUTES by name: they are the ones uvicorn's cycle has."""
    cycle = RequestResponseCycle(
        {}, Transport(), Flow(), logging.getLogger("test"), logging.getLogger("test"), False, [], asyncio.Event(),
        False, True, lambda: None,
    )  # fmt: skip
    assert tuple(vars(cycle)) == protocol.CYCLE_ATTRIBUTES


def test_refused_headers_fail_as_in_uvicorn_and_are_never_remembered(servers, uvicorn_errors):
    aeros_port, plain_port = servers
    raised.clear()
    for path in ["/valid-a", *HOSTILE, *HOSTILE]:  # a valid pair first, each refused one twice
        for payload in requests_for(path)[:1]:
            reply = assert_same_bytes(servers, payload)
            if path != "/valid-a":
                assert not reply.startswith(b"HTTP/1.1 200"), path
    assert raised[aeros_port] == raised[plain_port]
    assert [path for path, _, _ in raised[aeros_port]] == [*HOSTILE, *HOSTILE]
    assert {kind for _, kind, _ in raised[aeros_port]} == {"RuntimeError", "ValueError"}
    logged = [record.getMessage() for record in uvicorn_errors if record.exc_info]
    assert logged.count("Exception in ASGI application\n") == 2 * 2 * len(HOSTILE)
    for path in HOSTILE:
        for name, value in RESPONSES[path][1]:
            assert (name, value) not in protocol._lines
            if path.startswith("/bad-name"):
                assert name not in protocol._names
    assert (b"x-a", b"ok") in protocol._lines  # the valid variant still is


def test_many_distinct_values_keep_the_tables_bounded(servers, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_REMEMBERED", 16)
    for start in range(0, 200, 25):
        payload = b"".join(b"GET /varying?%d HTTP/1.1\r\nHost: t\r\n\r\n" % n for n in range(start, start + 25)) + END
        reply = assert_same_bytes(servers, payload)
        assert b"x-n: %d\r\n" % (start + 24) in reply
        assert len(protocol._lines) <= 16 and len(protocol._names) <= 16


# --- the cycles driven directly ------------------------------------------------------------------


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Flow:
    write_paused = False


def drive(cls: type, messages: list[dict], defaults: list, method: str = "GET", keep_alive: bool = True) -> tuple:
    """What ``cls``'s cycle writes and raises for ``messages``, and its state after."""
    transport = Transport()
    completed: list[bool] = []
    cycle = cls(
        scope={"method": method, "http_version": "1.1"},
        transport=transport,
        flow=Flow(),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=defaults,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: completed.append(True),
    )
    error = None
    for message in messages:
        coroutine = cycle.send(message)
        try:
            coroutine.send(None)
        except StopIteration:
            continue
        except Exception as exc:
            error = (type(exc), str(exc))
            break
        raise AssertionError("send waited")  # pragma: no cover - nothing here waits
    state = (cycle.keep_alive, cycle.chunked_encoding, cycle.expected_content_length, cycle.response_complete)
    return transport.writes, error, state, transport.closed, completed


DEFAULTS = [(b"date", b"Sun, 29 Nov 2026 15:00:00 GMT"), (b"server", b"uvicorn")]


def assert_drives_alike(messages: list[dict], defaults: list = DEFAULTS, **keywords: Any) -> tuple:
    theirs = drive(RequestResponseCycle, messages, defaults, **keywords)
    assert drive(AerosCycle, messages, defaults, **keywords) == theirs
    assert drive(AerosCycle, messages, defaults, **keywords) == theirs  # now with what it remembered
    return theirs


def start(headers: Any, status: int = 200) -> dict:
    return {"type": "http.response.start", "status": status, "headers": headers}


def body(data: bytes = b"", more: bool = False) -> dict:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_pairs_of_other_types_fail_or_pass_as_in_uvicorn():
    assert_drives_alike([start([(b"x-a", b"1"), (b"content-length", b"0")]), body()])
    for pair in [
        (memoryview(b"x-a"), b"1"),  # uvicorn: memoryview has no lower()
        (b"x-a", memoryview(b"1")),
        ("x-a", b"1"),
        (b"x-a", "1"),
        (bytearray(b"x-a"), b"1"),
        (b"x-a", bytearray(b"1")),
        (memoryview(b"content-length"), b"0"),
        (b"x-a",),
        (b"x-a", b"1", b"2"),
        b"ab",
        97,
    ]:
        assert_drives_alike([start([pair, (b"content-length", b"0")]), body()])
    assert_drives_alike([start({b"x-a": b"1"}), body()])  # a dict: its keys, as uvicorn reads it


def test_default_headers_are_checked_as_uvicorn_checks_them():
    for defaults in [
        [],
        [(b"server", b"uvicorn")],
        [(b"server", b"uvicorn"), (b"connection", b"close")],
        [(b"content-length", b"0")],
        [(b"transfer-encoding", b"chunked")],
        [(b"x-bad", b"a\nb")],
        [(b"x bad", b"1")],
    ]:
        assert_drives_alike([start([(b"content-length", b"2")]), body(b"ok")], list(defaults))
        assert_drives_alike([start([]), body(b"ok")], list(defaults))


def test_messages_out_of_order_fail_as_in_uvicorn():
    assert_drives_alike([body(b"x")])
    assert_drives_alike([start([(b"content-length", b"1")]), start([])])
    assert_drives_alike([start([(b"content-length", b"1")]), body(b"x"), body(b"y")])
    assert_drives_alike([start([(b"content-length", b"1")]), body(b"xy")])
    assert_drives_alike([start([(b"content-length", b"3")]), body(b"xy")])
    assert_drives_alike([start([]), body(b"x", True), body(b"", False)])
    assert_drives_alike([start([], status=600)])
    assert_drives_alike([{"type": "http.response.start"}])
    assert_drives_alike([start([]), body(b"x")], method="HEAD")
    assert_drives_alike([start([(b"content-length", b"1")]), body(b"x")], keep_alive=False)


def test_a_value_that_changes_each_time_does_not_fill_the_table():
    protocol._lines.clear()
    protocol._names.clear()
    for n in range(1000):
        headers = [(b"content-type", b"text/plain"), (b"x-request-id", b"%032x" % n), (b"content-length", b"0")]
        if n % 99 == 0:
            assert_drives_alike([start(headers), body()])
        else:
            drive(AerosCycle, [start(headers), body()], DEFAULTS)
    ids = [pair for pair in protocol._lines if pair[0] == b"x-request-id"]
    assert len(ids) == protocol.MAX_VALUES_PER_NAME
    assert (b"content-type", b"text/plain") in protocol._lines
    assert drive(AerosCycle, [start(headers), body()], DEFAULTS)[0][0].endswith(
        b"content-type: text/plain\r\nx-request-id: %032x\r\ncontent-length: 0\r\n\r\n" % 999
    )


def test_framing_headers_frame_as_in_uvicorn():
    for headers in [
        [(b"content-length", b"1"), (b"content-length", b"2")],  # the first one counts
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"1")],
        [(b"content-length", b"1"), (b"transfer-encoding", b"CHUNKED")],
        [(b"transfer-encoding", b"gzip")],
        [(b"connection", b"close")],
        [(b"Connection", b"upgrade, Close"), (b"content-length", b"1")],
    ]:
        for keep_alive in (True, False):
            assert_drives_alike([start(headers), body(b"x")], keep_alive=keep_alive)


def test_the_tables_stay_bounded_and_right_past_the_bound():
    for n in range(2 * protocol.MAX_REMEMBERED + 100):
        headers = [(b"x-request-id", b"%032x" % n), (b"x-name-%d" % n, b"v"), (b"content-length", b"0")]
        if n % 97 == 0:
            assert_drives_alike([start(headers), body()])
        else:
            assert drive(AerosCycle, [start(headers), body()], DEFAULTS)[0][0].endswith(
                b"x-request-id: %032x\r\nx-name-%d: v\r\ncontent-length: 0\r\n\r\n" % (n, n)
            )
        assert len(protocol._lines) <= protocol.MAX_REMEMBERED
        assert len(protocol._names) <= protocol.MAX_REMEMBERED
    long = [(b"x-long", b"v" * 300), (b"x-" + b"n" * 300, b"1"), (b"content-length", b"0")]
    assert_drives_alike([start(long), body()])
    assert (b"x-long", b"v" * 300) not in protocol._lines and b"x-" + b"n" * 300 not in protocol._names


TOKENS = st.sampled_from(
    [b"content-type", b"Content-Length", b"content-length", b"transfer-encoding", b"Transfer-Encoding",
     b"connection", b"Connection", b"x-a", b"X-A", b"etag", b"age", b"x-request-id", b"set-cookie"]
)  # fmt: skip
VALUES = st.sampled_from(
    [b"chunked", b"CHUNKED", b"gzip, chunked", b"close", b"keep-alive, close", b"Close", b"5", b"0", b"12",
     b" 5", b"+5", b"1_0", b"-1", b"\xd9\xa3", b"abc", b"", b"a\tb", b"\xff", b"text/plain; charset=utf-8"]
)  # fmt: skip
NAMES = st.one_of(TOKENS, st.binary(max_size=6), st.binary(max_size=6).map(bytes.lower))
PAIR_VALUES = st.one_of(VALUES, st.binary(max_size=8), st.text(max_size=4).map(lambda s: s.encode("utf-8")))
#: half of the pairs: known names (the framing ones among them) with the values that matter to them
PAIRS = st.one_of(st.tuples(TOKENS, VALUES), st.tuples(NAMES, PAIR_VALUES))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(PAIRS, max_size=8),
    bodies=st.lists(st.tuples(st.binary(max_size=6), st.booleans()), min_size=1, max_size=3),
    status=st.sampled_from([200, 204, 304, 404, 599]),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    keep_alive=st.booleans(),
    defaults=st.sampled_from([DEFAULTS, [], [(b"server", b"uvicorn"), (b"Connection", b"close")]]),
)
def test_random_headers_are_written_or_refused_as_uvicorn_does(headers, bodies, status, method, keep_alive, defaults):
    messages = [start(headers, status)] + [body(data, more) for data, more in bodies]
    if not bodies[-1][1]:
        messages.append(body(b"late"))  # after the response: uvicorn's error
    assert_drives_alike(messages, list(defaults), method=method, keep_alive=keep_alive)
