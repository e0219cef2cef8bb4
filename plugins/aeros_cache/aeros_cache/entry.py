"""Stored responses, their serialisation, and cache keys.

Everything here works on the raw ASGI scope, so the ASGI-edge fast path and the Quart path
compute byte-for-byte the same keys and apply the same rules.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode

FORMAT = b"AEC1"
_LEN = struct.Struct(">I")

#: request headers that make a request "carry credentials" (RFC 9111 section 3.5)
CREDENTIAL_HEADERS = (b"authorization", b"cookie")
#: response headers never kept in an entry (per request, per hop, or added on the way out)
UNSTORED_HEADERS = frozenset({"x-cache", "age", "connection", "keep-alive", "transfer-encoding", "date", "server"})
#: headers a 304 carries over from the stored 200 (RFC 9110 section 15.4.5)
NOT_MODIFIED_HEADERS = frozenset({"cache-control", "content-location", "etag", "expires", "vary", "last-modified"})


@dataclass
class Entry:
    """One stored response (``kind="response"``) or the list of ``Vary`` headers of a key (``kind="vary"``).

    ``expires`` is the absolute time (``time.time()``) until which the entry is fresh, ``None``
    for never; ``stale_until`` is how long it may be served stale while one request refreshes it.
    ``flags`` holds the per-view rules an edge hit must respect (``ignore_credentials``).
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    created: float = 0.0
    expires: float | None = None
    stale_until: float | None = None
    etag: str = ""
    flags: dict[str, Any] = field(default_factory=dict)
    kind: str = "response"
    vary: tuple[str, ...] = ()
    _raw_headers: list[tuple[bytes, bytes]] | None = field(default=None, init=False, repr=False, compare=False)

    def is_fresh(self, now: float) -> bool:
        return self.expires is None or now < self.expires

    def is_usable(self, now: float) -> bool:
        """Fresh, or stale but still inside its stale-while-revalidate window."""
        if self.is_fresh(now):
            return True
        return self.stale_until is not None and now < self.stale_until

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The stored headers as ASGI byte pairs (computed once per entry object)."""
        raw = self._raw_headers
        if raw is None:
            raw = self._raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        return raw

    def not_modified_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.raw_headers() if k.decode("latin-1") in NOT_MODIFIED_HEADERS]


def vary_marker(names: Iterable[str], expires: float | None, stale_until: float | None) -> Entry:
    return Entry(kind="vary", vary=tuple(names), expires=expires, stale_until=stale_until, created=time.time())


def encode(entry: Entry) -> bytes:
    """Entry -> bytes: a JSON header then the body (no pickle: a shared store is not trusted code)."""
    meta = {
        "k": entry.kind,
        "s": entry.status,
        "h": entry.headers,
        "c": entry.created,
        "e": entry.expires,
        "x": entry.stale_until,
        "t": entry.etag,
        "f": entry.flags,
        "v": list(entry.vary),
    }
    head = json.dumps(meta, separators=(",", ":")).encode()
    return FORMAT + _LEN.pack(len(head)) + head + entry.body


def decode(data: bytes) -> Entry | None:
    """bytes -> Entry, or ``None`` for anything that is not an entry of this format."""
    if not data.startswith(FORMAT) or len(data) < 8:
        return None
    (size,) = _LEN.unpack_from(data, 4)
    try:
        meta = json.loads(data[8 : 8 + size])
        return Entry(
            status=int(meta["s"]),
            headers=[(str(k), str(v)) for k, v in meta["h"]],
            body=bytes(data[8 + size :]),
            created=float(meta["c"]),
            expires=meta["e"],
            stale_until=meta["x"],
            etag=str(meta["t"]),
            flags=dict(meta["f"]),
            kind=str(meta["k"]),
            vary=tuple(meta["v"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# --- keys -----------------------------------------------------------------------------------


def normalise_query(query: bytes) -> str:
    """``b"b=2&a=1&a=0"`` -> ``"a=0&a=1&b=2"``: the same parameters give the same key."""
    if not query:
        return ""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    pairs.sort()
    text = urlencode(pairs)
    if len(text) > 512:
        text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The (comma-joined) value of one request header in an ASGI header list."""
    found = [value for key, value in headers if key == name]
    if not found:
        return None
    return b", ".join(found)


def request_facts(headers: Sequence[tuple[bytes, bytes]]) -> tuple[bytes | None, bool, bytes | None]:
    """What the cache reads from a request's headers, in one pass: ``(host, credentials, if_none_match)``.

    ``host`` is the first ``Host`` (or HTTP/2 ``:authority``); ``credentials`` whether it carries
    ``Authorization`` or ``Cookie`` (RFC 9111 section 3.5); ``if_none_match`` comma-joined.
    """
    host = if_none_match = None
    credentials = False
    for name, value in headers:
        if name == b"host" or name == b":authority":
            if host is None:
                host = value
        elif name in CREDENTIAL_HEADERS:
            credentials = True
        elif name == b"if-none-match":
            if_none_match = value if if_none_match is None else if_none_match + b", " + value
    return host, credentials, if_none_match


def origin(scope: Mapping[str, Any], host: bytes | None) -> str:
    """``scheme://host`` of the request (``host`` from :func:`request_facts`, else the server address)."""
    if host is None:
        server = scope.get("server") or ("", None)
        host = f"{server[0]}:{server[1]}".encode() if server[1] else str(server[0]).encode()
    return f"{scope.get('scheme', 'http')}://{host.decode('latin-1').lower()}"


def base_key(view_id: str, prefix: str, scope: Mapping[str, Any], query_string: bool, host: bytes | None) -> str:
    """``view_id|prefix|scheme://host|normalised query`` (query left empty when ``query_string=False``)."""
    query = normalise_query(scope.get("query_string", b"")) if query_string else ""
    return f"{view_id}|{prefix}|{origin(scope, host)}|{query}"


def variant_key(key: str, vary: Iterable[str], headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The key of one ``Vary`` variant: the base key plus a digest of the named request headers."""
    digest = hashlib.blake2b(digest_size=16)
    for name in vary:
        value = header(headers, name.encode("latin-1"))
        digest.update(name.encode("latin-1") + b"=" + (value if value is not None else b"\x00") + b"\n")
    return f"{key}|vary:{digest.hexdigest()}"


def etag_matches(if_none_match: bytes, etag: str) -> bool:
    """Weak comparison as RFC 9110 section 13.1.2 asks for ``If-None-Match``."""
    text = if_none_match.decode("latin-1").strip()
    if text == "*":
        return True
    want = etag[2:] if etag.startswith("W/") else etag
    for candidate in text.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == want:
            return True
    return False
