"""Cache keys: one function for the Quart path and the ASGI edge, computed from the raw ASGI scope.

A key is ``view_id|prefix|scheme|host|query`` and is *injective*: two requests get the same key
only if they have the same view, prefix, scheme, ``Host`` as sent and raw query bytes.

* The query string is kept as the raw bytes the client sent (order of every parameter kept, no
  percent-decoding). Reordering is not lossless: a view can see the order of ``request.args``
  and ``request.query_string``, so ``?a=1&b=2`` and ``?b=2&a=1`` are two entries.
  Queries over :data:`QUERY_INLINE` bytes are replaced by their SHA-256 (``h:`` vs ``q:`` keeps
  the two forms apart).
* ``Host`` is the first ``Host`` (or HTTP/2 ``:authority``) exactly as sent, case included; a
  request without one gets ``-``, which no sent value can produce (those start with ``=``).
* ``%`` and ``|`` inside a component are percent-escaped, so no component can forge a separator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: queries longer than this (bytes) are keyed by their SHA-256
QUERY_INLINE = 512
#: request headers that make a request "carry credentials" (RFC 9111 section 3.5)
CREDENTIAL_HEADERS = (b"authorization", b"cookie")
#: every request header :func:`request_facts` reads (one set lookup skips the others)
_FACT_HEADERS = frozenset((b"host", b":authority", b"if-none-match", *CREDENTIAL_HEADERS))


def escape(text: str) -> str:
    """``%`` -> ``%25``, ``|`` -> ``%7C``: a component of a key never contains a bare separator."""
    if "%" in text or "|" in text:
        return text.replace("%", "%25").replace("|", "%7C")
    return text


def query_part(query: bytes) -> str:
    """The raw query bytes as a key component (latin-1 maps every byte to one character: lossless)."""
    if len(query) > QUERY_INLINE:
        return "h:" + hashlib.sha256(query).hexdigest()
    return "q:" + escape(query.decode("latin-1"))


def host_part(host: bytes | None) -> str:
    return "-" if host is None else "=" + escape(host.decode("latin-1"))


def prefix_key(view_id: str, prefix: str) -> str:
    """Every key of one view and prefix starts with this (used to delete them)."""
    return f"{view_id}|{escape(prefix)}|"


def request_key(scope: Mapping[str, Any], query_string: bool, host: bytes | None) -> str:
    """What a request adds to :func:`prefix_key`: ``scheme|host|query`` (no query when ``query_string=False``)."""
    query = query_part(scope.get("query_string", b"")) if query_string else ""
    return f"{escape(scope.get('scheme', 'http'))}|{host_part(host)}|{query}"


def base_key(view_id: str, prefix: str, scope: Mapping[str, Any], query_string: bool, host: bytes | None) -> str:
    """The key of a request (before ``Vary``); the query is left out when ``query_string=False``."""
    return prefix_key(view_id, prefix) + request_key(scope, query_string, host)


def header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The (comma-joined) value of one request header in an ASGI header list."""
    found = [value for key, value in headers if key == name]
    if not found:
        return None
    return b", ".join(found)


def variant_key(key: str, vary: Iterable[str], headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The key of one ``Vary`` variant: the base key plus a digest of the named request headers."""
    digest = hashlib.blake2b(digest_size=16)
    for name in vary:
        value = header(headers, name.encode("latin-1"))
        raw = name.encode("latin-1")
        digest.update(len(raw).to_bytes(4, "big") + raw)
        digest.update(b"\x00" if value is None else b"\x01" + len(value).to_bytes(4, "big") + value)
    return f"{key}|vary:{digest.hexdigest()}"


def request_facts(headers: Sequence[tuple[bytes, bytes]]) -> tuple[bytes | None, bool, bytes | None]:
    """What the cache reads from a request's headers, in one pass: ``(host, credentials, if_none_match)``.

    ``host`` is the first ``Host`` (or HTTP/2 ``:authority``); ``credentials`` whether it carries
    ``Authorization`` or ``Cookie`` (RFC 9111 section 3.5); ``if_none_match`` comma-joined.
    """
    host = if_none_match = None
    credentials = False
    for name, value in headers:
        if name not in _FACT_HEADERS:
            continue
        if name == b"host" or name == b":authority":
            if host is None:
                host = value
        elif name in CREDENTIAL_HEADERS:
            credentials = True
        elif name == b"if-none-match":
            if_none_match = value if if_none_match is None else if_none_match + b", " + value
    return host, credentials, if_none_match
