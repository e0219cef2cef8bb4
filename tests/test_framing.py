"""Request framing on every backend, with raw sockets: malformed or ambiguous requests get 4xx and a
closed connection, never a 5xx, and never a second (smuggled) request answered."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aeros import WebServer
from aeros_core.testing import installed_backends

TIMEOUT = 5.0
BACKENDS = installed_backends()


def make_app() -> WebServer:
    app = WebServer(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1000

    @app.route("/", methods=["GET", "POST", "PUT"])
    async def index():
        from quart import request

        return f"got {len(await request.get_data())}"

    return app


@pytest.fixture(scope="module", params=BACKENDS)
def server(request):
    running = make_app().run_in_thread(
        port=0, server=request.param, header_timeout=1, keep_alive_timeout=1, access_log_to_std=False
    )
    running.backend = request.param
    yield running
    running.stop(timeout=15)


def exchange(port: int, payload: bytes, half_close: bool = False) -> tuple[list[int], bool]:
    """Send ``payload``; the statuses of the responses read, and whether the server closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    received, closed = b"", False
    try:
        try:
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server refused before reading it all
            pass
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            received += data
    finally:
        sock.close()
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)], closed


POST = b"POST / HTTP/1.1\r\nhost: x\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"


def test_content_length_with_transfer_encoding_closes_and_the_smuggled_request_is_never_answered(server):
    payload = POST + b"content-length: 40\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    statuses, closed = exchange(server.port, payload)
    assert closed
    assert len(statuses) == 1, f"{server.backend}: {statuses} (a second request was answered)"
    # RFC 9112 §6.1: refuse, or read as chunked and close. hypercorn and uvicorn refuse; granian
    # (hyper) reads it as chunked and closes.
    assert statuses[0] == 400 or (server.backend == "granian" and statuses[0] == 200), statuses


@pytest.mark.parametrize("writes", [1, 40], ids=["one-write", "many-writes"])
def test_a_head_over_max_head_size_gets_431_and_a_closed_connection(server, writes):
    head = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 45_000 + b"\r\n\r\n"
    if writes == 1:
        statuses, closed = exchange(server.port, head)
    else:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        size = len(head) // writes + 1
        received = b""
        try:
            for start in range(0, len(head), size):
                sock.sendall(head[start : start + size])
        except OSError:
            pass
        try:
            while data := sock.recv(65536):
                received += data
        except OSError:
            pass
        sock.close()
        statuses, closed = [int(c) for c in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)], True
    assert statuses == [431], f"{server.backend}: {statuses}"
    assert closed


CHUNKED = POST + b"transfer-encoding: chunked\r\n\r\n"
MALFORMED_CHUNKS = {
    "not-hex": CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n",
    "0x-prefix": CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n",
    "overflowing-size": CHUNKED + b"ffffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "20-digit-size": CHUNKED + b"f" * 20 + b"\r\nabc\r\n0\r\n\r\n",  # h11 takes up to 20 digits
    "more-data-than-size": CHUNKED + b"3\r\nhelloworld\r\n0\r\n\r\n",
    "lf-only": CHUNKED + b"5\nhello\n0\n\n",
    "lf-only-trailer": CHUNKED + b"5\r\nhello\r\n0\r\nx-t: 1\n\r\n",
}


@pytest.mark.parametrize("then", [b"", SMUGGLED], ids=["alone", "then-a-request"])
@pytest.mark.parametrize("payload", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
def test_malformed_chunked_bodies_get_400_and_a_closed_connection(server, payload, then):
    """Alone too: bytes after a bare-LF chunk line made h11 fail on the CRLF it found there, and
    without them Hypercorn waited for the rest of the body, unanswered."""
    statuses, closed = exchange(server.port, payload + then)
    if server.backend == "granian" and payload == MALFORMED_CHUNKS["lf-only-trailer"]:
        # hyper takes a trailer line ended by a bare LF (docs/getting-started.md): it answers
        # the request, or waits for the rest of the trailer; never the bytes after the body
        assert statuses in ([], [200]), statuses
        return
    assert statuses == [400], f"{server.backend}: {statuses} (the bytes after the body must not be answered)"
    assert closed, f"{server.backend}: connection left open"


def test_a_valid_chunked_body_with_extensions_and_trailers_then_a_request_on_the_same_connection(server):
    body = CHUNKED + b"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n"
    statuses, _ = exchange(server.port, body + b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert statuses == [200, 200], f"{server.backend}: {statuses}"


def test_a_response_before_the_body_was_read_closes_the_connection(server):
    """413 (over MAX_CONTENT_LENGTH): the server does not read the rest of a large body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(POST + b"content-length: 50000000\r\n\r\n" + b"x" * 65536)
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except OSError:
        pass
    sock.close()
    assert received.startswith(b"HTTP/1.1 413"), f"{server.backend}: {received[:200]!r}"


def test_the_server_still_answers_after_the_probes(server):
    assert exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")[0] == [200]


# --- fuzzing -----------------------------------------------------------------------------------

token = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"G\x00T", b"", b"PRI", b"get"])
target = st.sampled_from([b"/", b"/?a=1", b"*", b"http://x/", b"", b"/%zz", b"/\xff", b"//" + b"a" * 300])
version = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 ", b"HTTP/9", b""])
eol = st.sampled_from([b"\r\n", b"\n", b"\r"])
header_name = st.sampled_from(
    [b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"x-a", b"bad name", b""]
)
header_value = st.one_of(
    st.sampled_from(
        [b"chunked", b"gzip, chunked", b"0", b"5", b"-1", b"99999999999999999999", b"close", b"100-continue"]
    ),
    st.binary(max_size=20),
)
chunk_size = st.one_of(
    st.integers(0, 40).map(lambda n: b"%x" % n),
    st.sampled_from([b"zz", b"0x5", b"-1", b"f" * 25, b"5;ext=1", b"5 ", b""]),
)
chunk = st.tuples(chunk_size, eol, st.binary(max_size=30), eol).map(b"".join)


@st.composite
def requests(draw) -> bytes:
    line = draw(token) + b" " + draw(target) + b" " + draw(version)
    end = draw(eol)
    headers = b"".join(
        draw(header_name) + b": " + draw(header_value) + draw(eol) for _ in range(draw(st.integers(0, 5)))
    )
    body = b"".join(draw(st.lists(chunk, max_size=4))) + draw(st.sampled_from([b"0\r\n\r\n", b"", b"0\n\n"]))
    return line + end + headers + draw(eol) + body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=requests())
def test_fuzzed_heads_and_chunked_bodies_never_get_a_5xx(server, payload):
    statuses, _ = exchange(server.port, payload, half_close=True)
    assert all(status < 500 or status in (501, 505) for status in statuses), (
        f"{server.backend}: {statuses} for {payload!r}"
    )


def test_the_h11_internal_used_is_there():
    """StrictH11Connection reads h11's private receive buffer (cheaper than ``trailing_data``) and
    body reader (no public equivalent): fails when an h11 release changes them."""
    import h11

    from aeros_core.builtins.h11_connection import StrictH11Connection, buffered, chunked

    connection = StrictH11Connection(16384)
    connection.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /next HT")
    assert type(connection.next_event()) is h11.Request
    assert buffered(connection) == len(connection.trailing_data[0]) == len(b"GET /next HT")
    assert connection.unparsed == buffered(connection)
    assert not chunked(connection)
    connection = StrictH11Connection(16384)
    connection.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
    assert type(connection.next_event()) is h11.Request
    assert chunked(connection)


# --- StrictH11Connection's chunked framing, read by read --------------------------------------


def h11_events(connection: Any, reads: list[bytes]) -> list[str]:
    """Feed ``reads`` one by one; the events' names, answering each request; "400" when refused."""
    import h11

    names = []
    try:
        for data in reads:
            connection.receive_data(data)
            while (event := connection.next_event()) is not h11.NEED_DATA:
                names.append(type(event).__name__)
                if type(event) is h11.EndOfMessage:
                    connection.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
                    connection.send(h11.EndOfMessage())
                    connection.start_next_cycle()
    except h11.RemoteProtocolError as error:
        names.append(str(error.error_status_hint))
    return names


CHUNKED_HEAD = CHUNKED.replace(b"POST /", b"POST /upload")
VALID_BODY = b"5;a=b\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\n"
NEXT = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_a_valid_chunked_body_in_reads_of_any_size_is_read_and_the_next_request_too(size: int) -> None:
    from aeros_core.builtins.h11_connection import StrictH11Connection

    data = CHUNKED_HEAD + VALID_BODY + NEXT
    connection = StrictH11Connection(16384)
    names = h11_events(connection, [data[i : i + size] for i in range(0, len(data), size)])
    assert names[0] == "Request" and names[-3:] == ["EndOfMessage", "Request", "EndOfMessage"], names
    assert "receive_data" not in vars(connection)  # h11's own again after the body


@pytest.mark.parametrize(
    "body",
    [
        b"5\nhello\n0\n\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\r\n" + b"f" * 17 + b"\r\n",
        b"5\r\nhello\r\n0\r\nx-t: 1\n\r\n",
        b"5\r\nhello\r\n0\n\n",
        b"5\r" + b";" * 5000,  # a chunk-size line without end
        b" 5\r\nhello\r\n0\r\n\r\n",
    ],
)
@pytest.mark.timeout(600)  # the 5,002-byte body: 5,003 splits, then byte by byte (~100 s under coverage)
def test_a_malformed_chunked_body_is_refused_whatever_the_reads_it_arrives_in(body: bytes) -> None:
    """After the head (once the app has the request, read by read) as well as with it."""
    from aeros_core.builtins.h11_connection import StrictH11Connection

    for split in range(len(body) + 1):
        reads = [CHUNKED_HEAD + body[:split], *(body[i : i + 1] for i in range(split, len(body)))]
        names = h11_events(StrictH11Connection(16384), reads)
        assert names[-1] == "400", (split, names)
        assert "EndOfMessage" not in names, (split, names)


def test_only_a_chunked_body_is_followed() -> None:
    """A request without a chunked body costs nothing more: h11's ``receive_data`` stays."""
    from aeros_core.builtins.h11_connection import StrictH11Connection

    connection = StrictH11Connection(16384)
    assert h11_events(connection, [POST + b"content-length: 5\r\n\r\n", b"hel", b"lo"]) == [
        "Request",
        "Data",
        "Data",
        "EndOfMessage",
    ]
    assert "receive_data" not in vars(connection)
    h11_events(connection, [CHUNKED_HEAD + b"5\r\nhel"])
    assert vars(connection)["receive_data"] == connection.receive_chunked


# --- the cheaper response path of the Hypercorn backend (hypercorn_h11.response_event, the Data path) ---

RESPONSE_HEADS = [
    [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")],
    [(b"Content-Length", b"0"), (b"X-Thing", b"a\tb c"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
    [(b"content-length", b"5"), (b"content-length", b"5")],  # h11's path: the same value twice
    [(b"content-length", b"5, 5")],
    [(b"content-length", b" 5")],
    [(b"content-length", b"12345678901234567890123")],
    [(b"transfer-encoding", b"chunked")],
    [(b"transfer-encoding", b"gzip")],
    [],  # no framing header: chunked
    [("x-str", "text")],
    [(b"x-bad", b"a\r\nInjected: yes")],
    [(b"bad name", b"x")],
    [(b"x-empty", b"")],
    [(b"x-obs-text", b"caf\xe9")],
]


@pytest.mark.parametrize("headers", RESPONSE_HEADS)
def test_response_heads_are_h11s_own(headers: Any) -> None:
    """response_event (one pass over the headers) gives the bytes h11's Response gives, and refuses
    what h11 refuses, with the same error, also for pairs it has checked before."""
    import h11

    from aeros_core.builtins.h11_connection import StrictH11Connection
    from aeros_core.builtins.hypercorn_h11 import response_event

    def head(make: Any) -> Any:
        connection = StrictH11Connection(16384)
        connection.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        connection.next_event()
        try:
            return connection.send(make(list(headers), 200))
        except h11.LocalProtocolError as error:
            return type(error), str(error)

    expected = head(lambda headers, status: h11.Response(headers=headers, status_code=status))
    assert head(response_event) == expected
    assert head(response_event) == expected  # the pairs checked before (CHECKED)


def test_body_chunks_are_framed_and_checked_as_h11_does() -> None:
    """StrictH11Connection.send writes a Data event with h11's body writer directly: the same bytes
    (Content-Length and chunked), the same error and ERROR state past the Content-Length."""
    import h11

    from aeros_core.builtins.h11_connection import StrictH11Connection

    def run(connection: Any, headers: list, chunks: list[bytes]) -> list:
        connection.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        connection.next_event()
        out: list = [connection.send(h11.Response(status_code=200, headers=headers))]
        for chunk in chunks:
            try:
                out.append(connection.send(h11.Data(data=chunk)))
            except h11.LocalProtocolError as error:
                out.append((str(error), connection.our_state))
                return out
        out.append(connection.send(h11.EndOfMessage()))
        out.append(connection.our_state)
        return out

    for headers, chunks in [
        ([(b"content-length", b"5")], [b"hel", b"lo"]),
        ([(b"content-length", b"5")], [b"hello", b"!"]),
        ([], [b"hello", b"", b"world"]),
    ]:
        assert run(StrictH11Connection(16384), headers, chunks) == run(h11.Connection(h11.SERVER), headers, chunks)
