"""The PROXY protocol: the pure parser, then real servers (hypercorn, uvicorn) behind raw sockets."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quart import request

from aeros import WebServer
from aeros_core.proxy_protocol import V2_MAX_PAYLOAD, V2_SIGNATURE, ProxyHeader, ProxyProtocolError, parse
from aeros_core.testing import installed_backends


def v2(
    command: int = 1, family: int = 0x11, payload: bytes | None = None, version: int = 2, length: int | None = None
) -> bytes:
    if payload is None:
        payload = socket.inet_aton("203.0.113.7") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 51000, 443)
    size = len(payload) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + payload


# --- parser ----------------------------------------------------------------------------------


def test_v1_tcp4_tcp6_unknown():
    line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n"
    assert parse(line + b"GET / HTTP/1.1\r\n") == ProxyHeader(1, len(line), ("203.0.113.7", 51000), ("10.0.0.1", 443))
    line6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 80\r\n"
    assert parse(line6).source == ("2001:db8::7", 4711)
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader(1, 15, None, None)
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").source is None


def test_v2_inet_inet6_local_unix_and_tlvs():
    assert parse(v2() + b"GET") == ProxyHeader(2, 28, ("203.0.113.7", 51000), ("10.0.0.1", 443))
    six = (
        socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        + socket.inet_pton(socket.AF_INET6, "::1")
        + b"\x12\x34\x00\x50"
    )
    assert parse(v2(family=0x21, payload=six)).source == ("2001:db8::7", 0x1234)
    assert parse(v2(command=0, payload=b"")) == ProxyHeader(2, 16, None, None)  # LOCAL: the proxy's own check
    assert parse(v2(family=0x31, payload=b"\x00" * 216)).source is None  # AF_UNIX
    tlv = b"\x04\x00\x02ok"  # a TLV after the addresses is skipped
    header = parse(v2(payload=socket.inet_aton("1.2.3.4") * 2 + b"\x00\x01\x00\x02" + tlv))
    assert header is not None and header.length == 16 + 12 + len(tlv)


@pytest.mark.parametrize(
    "partial",
    [b"P", b"PROXY TCP4 1.2.3.4", b"\r\n\r\n\x00", V2_SIGNATURE, v2()[:20], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"],
)
def test_truncated_headers_ask_for_more(partial: bytes):
    assert parse(partial) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXX TCP4",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 ::1 ::2 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff2\r\n",
        b"PROXY " + b"A" * 200,  # oversized v1 line without CRLF
        b"\r\n\r\n\x00\r\nQUIX\n",
        v2(version=1),
        v2(command=2),
        v2(family=0x41),
        v2(family=0x13),
        v2(payload=b"\x00" * 8),  # IPv4 addresses truncated
        v2(family=0x21, payload=b"\x00" * 20),
        v2(payload=b"", length=V2_MAX_PAYLOAD + 1),  # oversized v2
    ],
)
def test_malformed_headers_are_refused(data: bytes):
    with pytest.raises(ProxyProtocolError):
        parse(data)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=120).map(lambda b: b"PROXY " + b),
        st.binary(max_size=60).map(lambda b: V2_SIGNATURE + b),
    )
)
def test_fuzz_parse_returns_none_a_header_or_refuses(data: bytes):
    try:
        header = parse(data)
    except ProxyProtocolError:
        return
    if header is not None:
        assert 0 < header.length <= len(data) and header.length <= 16 + V2_MAX_PAYLOAD
        if header.source is not None:
            assert 0 <= header.source[1] <= 65535


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_prefix_of_a_valid_header_asks_for_more(data: Any):
    whole = data.draw(st.sampled_from([v2(), b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n", b"PROXY UNKNOWN\r\n"]))
    cut = data.draw(st.integers(1, len(whole) - 1))
    assert parse(whole[:cut]) is None


# --- real servers ----------------------------------------------------------------------------

PROXY_BACKENDS = [name for name in installed_backends() if name in ("hypercorn", "uvicorn")]


@pytest.fixture
def app() -> WebServer:
    app = WebServer(__name__)

    @app.route("/who")
    async def who() -> str:
        return f"{request.remote_addr}"

    return app


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


REQUEST = b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("server", PROXY_BACKENDS)
def test_v1_and_v2_set_the_client_address(serve, app, server):
    running = serve(app, server=server, proxy_protocol=True, trusted_proxies="127.0.0.1")
    answer = exchange(running.port, b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n" + REQUEST)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"203.0.113.7"), answer
    answer = exchange(running.port, v2() + REQUEST)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"203.0.113.7"), answer
    # LOCAL (the proxy's own health check): the connection's own address stands
    assert exchange(running.port, v2(command=0, payload=b"") + REQUEST).endswith(b"127.0.0.1")
    # the header split over several packets
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        whole = v2() + REQUEST
        for index in range(0, len(whole), 7):
            sock.sendall(whole[index : index + 7])
        assert sock.makefile("rb").read().endswith(b"203.0.113.7")


@pytest.mark.parametrize("server", PROXY_BACKENDS)
@pytest.mark.parametrize(
    "data",
    [REQUEST, b"PROXY TCP4 bad\r\n" + REQUEST, v2(family=0x41) + REQUEST, b"PROXY " + b"9" * 300, v2()[:10]],
    ids=["plain-http", "malformed-v1", "bad-family", "oversized", "truncated"],
)
def test_invalid_or_missing_headers_close_without_an_answer(serve, app, server, data):
    running = serve(app, server=server, proxy_protocol=True, trusted_proxies="127.0.0.1")
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(data)
        if data == v2()[:10]:
            sock.shutdown(socket.SHUT_WR)  # truncated: the header never completes
        try:
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass
    assert exchange(running.port, v2() + REQUEST).endswith(b"203.0.113.7"), "the server still serves"


@pytest.mark.parametrize("server", PROXY_BACKENDS)
def test_untrusted_peers_are_closed(serve, app, server):
    running = serve(app, server=server, proxy_protocol=True, trusted_proxies="10.0.0.0/8")
    for data in (v2() + REQUEST, REQUEST):
        try:
            assert exchange(running.port, data) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass


def test_refused_at_start_where_it_cannot_work(app, tmp_path):
    with pytest.raises(ValueError, match="trusted_proxies"):
        app.run_in_thread(port=0, proxy_protocol=True)
    if "granian" in installed_backends():
        with pytest.raises(ValueError, match="granian backend cannot read the PROXY protocol"):
            app.run_in_thread(port=0, proxy_protocol=True, trusted_proxies="127.0.0.1", server="granian")
