"""The PROXY protocol (HAProxy, versions 1 and 2): the real client address, sent by a load balancer
before the first byte of HTTP on a connection.

Pure functions first: :func:`parse` reads a header from the bytes received so far and says
whether it is complete, incomplete (read more) or invalid. Then the one asyncio integration,
:class:`ProxyProtocol`, an ``asyncio.Protocol`` wrapped around a server's own protocol: it
consumes the header from the first bytes of the connection, closes connections whose peer is
not a trusted proxy or whose header is invalid, and hands the server's protocol a transport
whose ``peername`` is the client the header names. Hypercorn (streams) and uvicorn
(protocols) both build their connections from such a protocol; granian (Rust) cannot take one,
so it refuses ``proxy_protocol=True`` at start.

Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

V1_PREFIX = b"PROXY "
V1_MAX = 107  #: the longest version 1 line the specification allows, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = 16  #: signature, version/command, family/transport, length
V2_MAX_PAYLOAD = 4096  #: addresses plus TLVs; HAProxy sends far less. Beyond it: invalid
HEADER_TIMEOUT = 5.0  #: seconds for the whole header to arrive before the connection is closed

Address = tuple[str, int]


class ProxyProtocolError(ValueError):
    """The bytes are not a valid PROXY protocol header (the connection must be closed)."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header. ``source``/``destination`` are None for LOCAL (health checks by the
    proxy itself) and UNKNOWN/unspecified families: then the connection's own addresses stand."""

    version: int
    length: int  #: bytes the header took at the start of the stream
    source: Address | None
    destination: Address | None


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None when more bytes are needed to decide.

    Raises :class:`ProxyProtocolError` when ``data`` cannot start a valid header (wrong
    signature, malformed fields, addresses that do not parse, a header beyond its size limit).
    """
    if not data:
        return None
    if data[0] == 0x0D:  # "\r": version 2 (binary)
        if len(data) < len(V2_SIGNATURE):
            if not V2_SIGNATURE.startswith(data):
                raise ProxyProtocolError("not a PROXY protocol header")
            return None
        return _parse_v2(data)
    if data[0] == 0x50:  # "P": version 1 (text)
        return _parse_v1(data)
    raise ProxyProtocolError("not a PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    prefix = data[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(prefix):
        raise ProxyProtocolError("not a PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyProtocolError("PROXY v1 line longer than 107 bytes")
        if b"\n" in data[:V1_MAX]:
            raise ProxyProtocolError("PROXY v1 line not ended by CRLF")
        return None
    line = data[:end]
    try:
        fields = line.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyProtocolError("PROXY v1 line is not ASCII") from None
    length = end + 2
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(1, length, None, None)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError("malformed PROXY v1 line")
    version = 4 if fields[1] == "TCP4" else 6
    source = (_v1_address(fields[2], version), _v1_port(fields[4]))
    destination = (_v1_address(fields[3], version), _v1_port(fields[5]))
    return ProxyHeader(1, length, source, destination)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyProtocolError(f"bad address in PROXY v1 line: {text[:50]!r}") from None
    if address.version != version:
        raise ProxyProtocolError("PROXY v1 address does not match its family")
    return str(address)


def _v1_port(text: str) -> int:
    # Decimal digits only, no sign, no leading zero (the specification's wording), 0..65535.
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0") or len(text) > 5:
        raise ProxyProtocolError(f"bad port in PROXY v1 line: {text[:10]!r}")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"bad port in PROXY v1 line: {text!r}")
    return port


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V2_SIGNATURE):
        raise ProxyProtocolError("not a PROXY protocol header")
    if len(data) < V2_HEADER:
        return None
    version_command, family, payload_length = data[12], data[13], struct.unpack_from("!H", data, 14)[0]
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"PROXY v2: unknown version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyProtocolError(f"PROXY v2: unknown command {command}")
    if payload_length > V2_MAX_PAYLOAD:
        raise ProxyProtocolError(f"PROXY v2 header of {payload_length} bytes (limit {V2_MAX_PAYLOAD})")
    length = V2_HEADER + payload_length
    if len(data) < length:
        return None
    if command == 0:  # LOCAL: the proxy speaks for itself (its health checks)
        return ProxyHeader(2, length, None, None)
    payload = data[V2_HEADER:length]
    address_family, transport = family >> 4, family & 0x0F
    if transport > 2:
        raise ProxyProtocolError(f"PROXY v2: unknown transport {transport}")
    if address_family == 1:  # AF_INET
        if payload_length < 12:
            raise ProxyProtocolError("PROXY v2: IPv4 addresses truncated")
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", payload)
        return ProxyHeader(
            2, length, (socket.inet_ntop(socket.AF_INET, src), sport), (socket.inet_ntop(socket.AF_INET, dst), dport)
        )
    if address_family == 2:  # AF_INET6
        if payload_length < 36:
            raise ProxyProtocolError("PROXY v2: IPv6 addresses truncated")
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", payload)
        return ProxyHeader(
            2, length, (socket.inet_ntop(socket.AF_INET6, src), sport), (socket.inet_ntop(socket.AF_INET6, dst), dport)
        )
    if address_family in (0, 3):  # unspecified, AF_UNIX: no IP address to take
        return ProxyHeader(2, length, None, None)
    raise ProxyProtocolError(f"PROXY v2: unknown address family {address_family}")


# --- asyncio: consume the header before the server's own protocol sees a byte ---------------


class _PeerSocket:
    """The connection's socket, but whose peer is the client named by the PROXY header."""

    def __init__(self, sock: Any, peername: Address) -> None:
        self._sock = sock
        self._peername = peername

    def getpeername(self) -> Address:
        return self._peername

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _PeerView:
    """A transport or stream writer whose ``peername`` (and socket's peer) is the PROXY source."""

    def __init__(self, real: Any, peername: Address) -> None:
        self._real = real
        self._peername = peername

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        if name == "socket":
            sock = self._real.get_extra_info("socket")
            return _PeerSocket(sock, self._peername) if sock is not None else None
        return self._real.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def trusted_peers(settings: Any) -> Callable[[str], bool]:
    """Who may send a PROXY header: the ``trusted_proxies`` of ``settings``."""
    from .builtins.proxies import TrustedProxies

    return TrustedProxies(settings.trusted_proxies or ())


def protocol_factory(make_protocol: Callable[..., asyncio.Protocol], settings: Any) -> Callable[..., asyncio.Protocol]:
    """For servers built on ``loop.create_server`` (uvicorn): a factory taking the same keywords
    as ``make_protocol`` whose protocols read the PROXY header first."""
    trusted = trusted_peers(settings)

    def make(*args: Any, **kwargs: Any) -> asyncio.Protocol:
        return ProxyProtocol(lambda: make_protocol(*args, **kwargs), trusted)

    return make


async def read_header(reader: asyncio.StreamReader) -> ProxyHeader:
    """Read exactly one header from a stream (never a byte of what follows it)."""
    data = await reader.readexactly(1)
    while True:
        header = parse(data)  # raises ProxyProtocolError
        if header is not None:
            return header
        if data[0] == 0x0D and len(data) >= V2_HEADER:
            missing = V2_HEADER + struct.unpack_from("!H", data, 14)[0] - len(data)
        elif data[0] == 0x0D:
            missing = V2_HEADER - len(data)
        else:
            missing = 1  # version 1: up to the CRLF, at most 107 bytes
        data += await reader.readexactly(missing)


def stream_gate(settings: Any) -> Callable[..., Awaitable[Any]] | None:
    """For servers built on ``asyncio.start_server`` (Hypercorn): ``await gate(reader, writer)``
    returns the writer to serve the connection with (its peer the PROXY source), or None
    when the connection was closed (peer not trusted, header invalid, truncated or late)."""
    if not settings.proxy_protocol:
        return None
    trusted = trusted_peers(settings)

    async def gate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else ""
        header = None
        if host and trusted(host):
            try:
                header = await asyncio.wait_for(read_header(reader), HEADER_TIMEOUT)
            except (ProxyProtocolError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                header = None
        if header is None:
            writer.transport.abort()
            return None
        return _PeerView(writer, header.source) if header.source else writer

    return gate


class ProxyProtocol(asyncio.Protocol):
    """Wraps one connection's server protocol: reads the PROXY header first.

    ``inner`` makes the server's protocol once the header is read; ``trusted(host)`` says
    whether the connection's peer may send one. A peer that is not trusted, an invalid header,
    or a header not complete within :data:`HEADER_TIMEOUT` closes the connection without a
    byte sent (the peer expected to speak PROXY, not HTTP).
    """

    def __init__(self, inner: Callable[[], asyncio.Protocol], trusted: Callable[[str], bool]) -> None:
        self._make_inner = inner
        self._trusted = trusted
        self._inner: asyncio.Protocol | None = None
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        connection: Any = transport  # a TCP transport (uvloop's are not asyncio's classes)
        self._transport = connection
        peer = connection.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else ""
        if not (host and self._trusted(host)):
            connection.abort()
            return
        self._timer = asyncio.get_running_loop().call_later(HEADER_TIMEOUT, connection.abort)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._buffer += data
        try:
            header = parse(self._buffer)
        except ProxyProtocolError:
            transport.abort()
            return
        if header is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rest = self._buffer[header.length :]
        self._buffer = b""
        inner = self._inner = self._make_inner()
        peer = transport.get_extra_info("peername")
        source = header.source or (peer if isinstance(peer, tuple) else None)
        inner.connection_made(_PeerView(transport, source) if source else transport)  # type: ignore[arg-type]
        if rest and not transport.is_closing():
            inner.data_received(rest)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None  # closes the transport
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
