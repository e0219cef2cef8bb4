"""Header names and values checked once, encoded once: what the ASGI edge appends to responses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: One response header as ASGI carries it: lower-case name, latin-1 value.
RawHeader = tuple[bytes, bytes]

HeaderSource = Mapping[str, Any] | Iterable[tuple[str, Any]] | None

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def encode_header(name: str, value: Any) -> RawHeader:
    """Check one header and encode it for ASGI; ``ValueError`` names what is wrong with it."""
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, bool) or value is None:
        raise ValueError(f"header {name!r} needs a string value, got {value!r}")
    value = str(value).strip()
    if _BAD_VALUE.search(value):
        raise ValueError(f"header {name!r} has a value with a line break or NUL: {value!r}")
    try:
        raw_value = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r} has a value that is not latin-1: {value!r}") from None
    return name.lower().encode("ascii"), raw_value


def header_pairs(source: HeaderSource) -> list[tuple[str, Any]]:
    """``{"Name": value}`` or ``[("Name", value), ...]`` (the list form allows repeated names)."""
    if source is None:
        return []
    if isinstance(source, Mapping):
        return list(source.items())
    if isinstance(source, (str, bytes)):
        raise TypeError("headers must be a mapping or a list of (name, value) pairs, not a string")
    pairs = []
    for item in source:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"expected a (name, value) pair, got {item!r}") from None
        pairs.append((name, value))
    return pairs


def encode_headers(source: HeaderSource) -> list[RawHeader]:
    """Check and encode every header of ``source``."""
    return [encode_header(name, value) for name, value in header_pairs(source)]


def add_missing(headers: list[RawHeader], present: set[bytes], extra: Iterable[RawHeader]) -> None:
    """Append each header of ``extra`` whose name the response does not carry yet."""
    for header in extra:
        if header[0] not in present:
            headers.append(header)


def add_vary(headers: list[RawHeader], token: bytes) -> None:
    """Make the response's ``Vary`` include ``token`` (merged into an existing ``Vary`` header)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() != b"vary":
            continue
        tokens = {part.strip().lower() for part in value.split(b",")}
        if token.lower() in tokens or b"*" in tokens:
            return
        headers[index] = (name, value + b", " + token if value.strip() else token)
        return
    headers.append((b"vary", token))
