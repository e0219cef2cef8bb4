"""``trusted_proxies``: the real client, scheme and host behind load balancers (``Stage.PROXY``, outermost).

When the connection's peer is a trusted proxy, the forwarding headers it sent are walked from
the right (the hop nearest to us) through trusted addresses; the first address that is not
trusted is the client (all trusted: the leftmost). The scope is rewritten before any other
step reads it: ``client``, ``scheme``, the ``Host`` header and ``server``. So the cache key,
``url_for(_external=True)``, ``request.remote_addr`` and the access log all see the real client.

- ``Forwarded`` (RFC 7239) wins over ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` when both came.
- A header that does not parse is ignored as a whole (never a 5xx); so are a ``proto`` other
  than http/https and a host with characters a host cannot have.
- Forwarding headers are kept in the scope only when they were applied. From a peer that is
  not trusted (or when malformed) they are removed, with the request id header: nothing
  downstream (a view, the cache key, a plugin) can read a spoofed value.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from socket import AF_INET, inet_pton
from typing import Any

from ..hookspecs import hookimpl
from ..pipeline import ASGIApp, AsgiWrapper, Stage
from ..runner.settings import ServerSettings

FORWARDED = b"forwarded"
X_FOR = b"x-forwarded-for"
X_PROTO = b"x-forwarded-proto"
X_HOST = b"x-forwarded-host"
MAX_HOPS = 32  #: more forwarded hops than this: the header is ignored
_CACHE_LIMIT = 4096
_CACHED_VALUES_MAX = 512  #: header values longer than this (in all) are parsed each time, not remembered

Node = tuple[str, int]  #: (host, port); host an IP address, "unknown" or an obfuscated "_name"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR = re.compile(rf"\s*({_TOKEN})=({_TOKEN}|\"(?:[^\"\\]|\\.)*\")\s*([;,]|$)")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]{1,64}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}\.?(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?"
)


class TrustedProxies:
    """Whether an address is one of ``trusted_proxies`` (IPs, CIDRs, or ``"*"``: every address).

    Answers are remembered (the few proxy addresses are asked on every request).
    """

    def __init__(self, specs: Iterable[str]) -> None:
        specs = [spec.strip() for spec in specs if spec.strip()]
        self.everyone = "*" in specs
        self.networks = [ipaddress.ip_network(spec, strict=False) for spec in specs if spec != "*"]
        #: IPv4 networks as (address, mask) integers: an IPv4 client is checked without ipaddress
        self._v4 = [
            (int(network.network_address), int(network.netmask))
            for network in self.networks
            if isinstance(network, ipaddress.IPv4Network)
        ]
        self._known: dict[str, bool] = {}

    def __call__(self, host: str) -> bool:
        known = self._known.get(host)
        if known is None:
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            known = self._known[host] = self._check(host)
        return known

    def _check(self, host: str) -> bool:
        if ":" not in host:  # IPv4 (or not an address)
            try:
                packed = inet_pton(AF_INET, host)
            except (OSError, ValueError):
                return False
            if self.everyone:
                return True
            number = int.from_bytes(packed, "big")
            for network, mask in self._v4:
                if number & mask == network:
                    return True
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if self.everyone:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


# --- parsing (pure functions: None when a value does not parse) -----------------------------


def parse_node(text: str) -> Node | None:
    """``192.0.2.1``, ``192.0.2.1:80``, ``2001:db8::1``, ``[2001:db8::1]:80``, ``unknown``, ``_hidden``."""
    text = text.strip()
    host, port = text, 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":") or not _is_port(rest[1:]):
                return None
            port = int(rest[1:])
        return (host, port) if _is_ip(host, 6) else None
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not _is_port(port_text):
            return None
        port = int(port_text)
    if _is_ip(host, None):
        return host, port
    if host == "unknown" or _OBFUSCATED.fullmatch(host):
        return host, 0
    return None


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535


def _is_ip(text: str, version: int | None) -> bool:
    """Whether ``text`` is an IP address (of ``version``); ``inet_pton`` is 5x faster than ``ipaddress``."""
    if version != 6 and "." in text and ":" not in text:
        try:
            socket.inet_pton(socket.AF_INET, text)
            return True
        except (OSError, ValueError):
            return False
    if version != 4 and ":" in text:
        try:
            socket.inet_pton(socket.AF_INET6, text)
            return True
        except (OSError, ValueError):
            return False
    return False


def parse_forwarded(values: list[str]) -> list[dict[str, str]] | None:
    """The elements of ``Forwarded`` headers (RFC 7239), each ``{"for": ..., "proto": ..., "host": ...}``."""
    elements: list[dict[str, str]] = []
    for value in values:
        position, element = 0, {}
        while position < len(value):
            match = _PAIR.match(value, position)
            if match is None:
                return None
            name, raw, separator = match.group(1).lower(), match.group(2), match.group(3)
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            if name in element:
                return None  # a parameter twice in one element
            element[name] = raw
            position = match.end()
            if separator != ";":
                elements.append(element)
                element = {}
        if not value.strip():
            return None
    return elements if elements and len(elements) <= MAX_HOPS else None


def parse_list(values: list[str]) -> list[str] | None:
    """The comma-separated items of headers that may repeat (``X-Forwarded-*``)."""
    if len(values) == 1 and "," not in values[0]:  # the usual case: one proxy, one value
        item = values[0].strip()
        return [item] if item else None
    items = [item.strip() for value in values for item in value.split(",")]
    if not items or len(items) > MAX_HOPS or not all(items):
        return None
    return items


def client_index(chain: list[Node], trusted: TrustedProxies) -> int:
    """Walk ``chain`` (client first, nearest hop last) from the right through trusted addresses."""
    index = len(chain) - 1
    while index > 0 and trusted(chain[index][0]):
        index -= 1
    return index


def valid_proto(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    return value if value in ("http", "https") else None


def valid_host(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if len(value) <= 255 and _HOST.fullmatch(value) else None


def _aligned(values: list[str] | None, from_right: int) -> str | None:
    """The value a proxy recorded for the hop ``from_right`` places from the nearest one."""
    if not values:
        return None
    return values[-(from_right + 1)] if from_right < len(values) else values[0]


def forwarded_view(
    headers: dict[bytes, list[str]], trusted: TrustedProxies
) -> tuple[Node | None, str | None, str | None] | None:
    """``(client, proto, host)`` from the forwarding headers a trusted peer sent (client None: not
    given, the peer stands); None when they do not parse."""
    if FORWARDED in headers:
        elements = parse_forwarded(headers[FORWARDED])
        if elements is None or any("for" not in element for element in elements):
            return None
        chain = [parse_node(element["for"]) for element in elements]
        if any(node is None for node in chain):
            return None
        nodes: list[Node] = chain  # type: ignore[assignment]
        index = client_index(nodes, trusted)
        chosen = elements[index]
        return nodes[index], chosen.get("proto"), chosen.get("host")
    if X_FOR not in headers:
        protos = parse_list(headers[X_PROTO]) if X_PROTO in headers else None
        hosts = parse_list(headers[X_HOST]) if X_HOST in headers else None
        return None if protos is None and hosts is None else (None, _aligned(protos, 0), _aligned(hosts, 0))
    items = parse_list(headers[X_FOR])
    if items is None:
        return None
    parsed = [parse_node(item) for item in items]
    if any(node is None for node in parsed):
        return None
    nodes = parsed  # type: ignore[assignment]
    index = client_index(nodes, trusted)
    from_right = len(nodes) - 1 - index
    protos = parse_list(headers[X_PROTO]) if X_PROTO in headers else None
    hosts = parse_list(headers[X_HOST]) if X_HOST in headers else None
    return nodes[index], _aligned(protos, from_right), _aligned(hosts, from_right)


# --- the scope ------------------------------------------------------------------------------


#: client (None: the peer), valid proto, valid host as sent in a Host header and as ``(name, port or None)``
View = tuple[Node | None, str | None, bytes | None, tuple[str, int | None] | None]


_UNKNOWN = object()


class ForwardedViews:
    """:func:`forwarded_view` with validated proto and host. The usual shape (one proxy, one IPv4
    client) is answered by a short path whose proto/host verdicts are remembered per value, so a
    client never seen before costs what a returning one does; other shapes are remembered per
    distinct header values. Both tables are bounded (emptied when full)."""

    def __init__(self, trusted: TrustedProxies) -> None:
        self.trusted = trusted
        self._known: dict[tuple[tuple[bytes, bytes], ...], View | None] = {}
        #: (X-Forwarded-Proto, X-Forwarded-Host) as sent -> the view of a one-hop request with them
        self._parts: dict[tuple[bytes | None, bytes | None], View] = {}

    def __call__(self, headers: Sequence[tuple[bytes, bytes]]) -> View | None:
        """The view of the forwarding headers (name, value) of a request, in their order."""
        if len(headers) <= 3:
            # The usual shape, a client behind one proxy, answered without the general parser nor
            # the cache (each client is new to it): one X-Forwarded-For holding an IPv4 address, at
            # most one -Proto and one -Host (their verdicts remembered per value).
            client = proto = host = None
            for name, value in headers:
                if name == X_FOR and client is None:
                    client = value
                elif name == X_PROTO and proto is None:
                    proto = value
                elif name == X_HOST and host is None:
                    host = value
                else:  # Forwarded, or a header twice
                    client = None
                    break
            if client is not None:
                text = client.decode("latin-1").strip()
                try:  # a dotted quad and nothing else (no port, no second hop)
                    inet_pton(AF_INET, text)
                except (OSError, ValueError):
                    pass
                else:
                    found = self._parts.get((proto, host)) or self._one_hop(client, proto, host)
                    if found is not None:
                        return (text, 0), found[1], found[2], found[3]
        key = tuple(headers)
        known = self._known.get(key, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        view = self._parsed(key)
        if sum([len(value) for _, value in key]) <= _CACHED_VALUES_MAX:  # bounded memory
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            self._known[key] = view
        return view

    def _one_hop(self, client: bytes, proto: bytes | None, host: bytes | None) -> View | None:
        """The view of a one-hop request with these ``X-Forwarded-Proto`` and ``-Host`` values,
        from the general parser, remembered for the next clients (bounded)."""
        alone = [(X_FOR, client)]
        if proto is not None:
            alone.append((X_PROTO, proto))
        if host is not None:
            alone.append((X_HOST, host))
        found = self._parsed(tuple(alone))
        if found is not None and len(proto or b"") + len(host or b"") <= _CACHED_VALUES_MAX:
            if len(self._parts) >= _CACHE_LIMIT:
                self._parts.clear()
            self._parts[(proto, host)] = found
        return found

    def _parsed(self, headers: tuple[tuple[bytes, bytes], ...]) -> View | None:
        values: dict[bytes, list[str]] = {}
        for name, value in headers:
            values.setdefault(name, []).append(value.decode("latin-1"))
        try:
            found = forwarded_view(values, self.trusted)
        except (ValueError, IndexError):  # belt and braces: a parser bug must never cost a 5xx
            found = None
        view = None
        if found is not None:
            host = valid_host(found[2])
            view = (
                found[0],
                valid_proto(found[1]),
                host.encode() if host else None,
                _server_of(host) if host else None,
            )
        return view


def rewrite(
    scope: dict[str, Any],
    views: Callable[[Sequence[tuple[bytes, bytes]]], View | None],
    client_trusted: bool,
    peer_trusted: bool,
    watched: frozenset[bytes],
    keep: frozenset[bytes],
) -> dict[str, Any]:
    """The scope as the real client sent it. Returns ``scope`` itself when nothing changes.

    ``client_trusted``: the scope's client is a trusted proxy (its forwarding headers are read);
    ``peer_trusted``: the connection came from a trusted proxy (the same, or the PROXY protocol);
    ``watched``: the headers only a proxy may set (forwarding headers and the request id);
    ``keep``: those of them kept when the connection's peer is trusted (the request id).
    """
    forwarding: list[tuple[bytes, bytes]] | None = None
    others: list[bytes] | None = None
    host_header: tuple[bytes, bytes] | None = None  # the Host header when ``watched`` has it and it came once
    hosts = 0
    for header in scope["headers"]:
        name = header[0]
        if name in watched:
            if name in _FORWARDING:
                if forwarding is None:
                    forwarding = [header]
                else:
                    forwarding.append(header)
            elif name == b"host":
                host_header = header
                hosts += 1
            elif not (peer_trusted and name in keep):
                if others is None:
                    others = [name]
                else:
                    others.append(name)
    if forwarding is None and others is None:
        return scope
    # Removed from the scope: what was not applied, except what a trusted proxy may send (the request id).
    drop = others or []
    scope = dict(scope)
    if forwarding is not None:
        view = views(forwarding) if client_trusted else None
        if view is None:
            drop.extend(name for name, _ in forwarding)
        else:
            node, proto, host, server = view
            if node is not None:
                scope["client"] = node
            if proto is not None:
                scope["scheme"] = ("wss" if proto == "https" else "ws") if scope["type"] == "websocket" else proto
            if host is not None and server is not None:
                name, port = server
                if port is None:
                    port = 443 if scope.get("scheme") in ("https", "wss") else 80
                scope["server"] = (name, port)
                if drop or hosts != 1:
                    headers = [header for header in scope["headers"] if header[0] != b"host" and header[0] not in drop]
                else:  # the same, in C: the one Host header taken out
                    headers = list(scope["headers"])
                    del headers[headers.index(host_header)]
                headers.append((b"host", host))
                scope["headers"] = headers
                return scope
    if drop:
        scope["headers"] = [header for header in scope["headers"] if header[0] not in drop]
    return scope


def _server_of(host: str) -> tuple[str, int | None]:
    """``("name", port)`` of a valid Host value; port None when not given (the scheme's default)."""
    if host.startswith("["):
        name, _, port = host[1:].partition("]")
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    return name, int(port) if port else None


_FORWARDING = frozenset({FORWARDED, X_FOR, X_PROTO, X_HOST})


def trusted_proxies(settings: ServerSettings) -> Any:
    trusted = TrustedProxies(settings.trusted_proxies or ())
    views = ForwardedViews(trusted)
    request_id = settings.request_id_header.lower().encode("latin-1") if settings.request_id_header else None
    # Host too: the loop over the headers finds it for the rewrite without a second pass
    watched = _FORWARDING | frozenset({request_id} if request_id else ()) | {b"host"}
    keep = frozenset({request_id} if request_id else ())
    # With the PROXY protocol, every connection passed the gate: its peer was a trusted proxy.
    behind_proxy_protocol = settings.proxy_protocol

    # bound methods: cheaper to call than the instances; the verdicts' table read directly first
    # (it is emptied, never replaced)
    is_trusted = trusted.__call__
    known_verdict = trusted._known.get
    view_of = views.__call__

    def wrap(app: ASGIApp) -> ASGIApp:
        def real_client(scope: dict[str, Any], receive: Any, send: Any) -> Any:
            # A plain function returning the app's awaitable: no coroutine frame of ours per request.
            kind = scope["type"]
            if kind == "http" or kind == "websocket":
                client = scope.get("client")
                if client:
                    client_trusted = known_verdict(client[0])
                    if client_trusted is None:
                        client_trusted = is_trusted(client[0])
                else:
                    client_trusted = False
                scope = rewrite(scope, view_of, client_trusted, behind_proxy_protocol or client_trusted, watched, keep)
            return app(scope, receive, send)

        return real_client

    return wrap


@hookimpl
def aeros_asgi_wrapper(settings: ServerSettings) -> AsgiWrapper | None:
    if not settings.trusted_proxies:
        return None
    return AsgiWrapper(Stage.PROXY, trusted_proxies(settings))


@hookimpl
def aeros_server_config(app: Any, settings: ServerSettings) -> None:
    """Refuse at start what cannot work: bad ``trusted_proxies`` entries (named), and
    ``proxy_protocol=True`` without trusted proxies, with TLS, or on a backend that cannot read it."""
    for spec in settings.trusted_proxies or ():
        if spec.strip() != "*":
            try:
                ipaddress.ip_network(spec.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {spec!r} is not an IP address, a CIDR network or '*'") from None
    if not settings.proxy_protocol:
        return
    if not settings.trusted_proxies:
        raise ValueError("proxy_protocol=True needs trusted_proxies: the addresses allowed to send PROXY headers")
    if settings.tls:
        raise ValueError("proxy_protocol=True with TLS (certfile) is not supported: terminate TLS at the proxy")
    backend = app.plugin_manager.hook.aeros_server_backend(name=settings.server)
    if backend is not None and not getattr(backend, "proxy_protocol", False):
        raise ValueError(
            f"the {settings.server} backend cannot read the PROXY protocol (proxy_protocol=True): "
            "use server='hypercorn' or server='uvicorn', or X-Forwarded-For / Forwarded with trusted_proxies"
        )
