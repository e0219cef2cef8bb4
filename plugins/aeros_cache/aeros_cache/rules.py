"""The cache's rules, one implementation each, shared by the Quart path and the ASGI edge:
who may read the cache, which entry may be served to whom, what a hit looks like, what may be
stored and for how long (RFC 9111)."""

from __future__ import annotations

import inspect
import time
from typing import Any

from quart import Response
from quart.wrappers.response import DataBody

from .entry import UNSTORED_HEADERS, Entry, etag_matches, strong_etag
from .options import RequestState, ViewOptions

RawHeaders = list[tuple[bytes, bytes]]
_NOT_STORED = frozenset({"private", "no-store", "no-cache"})
_HIT = (b"x-cache", b"HIT")
_STALE = (b"x-cache", b"STALE")
#: ``Age`` values of the first hour, encoded once
_AGE_TABLE = 3600
_AGES = [str(age).encode() for age in range(_AGE_TABLE)]


def bypasses(options: ViewOptions, credentials: bool) -> bool:
    """A request with ``Authorization``/``Cookie`` neither reads nor writes, unless the view opts in."""
    return credentials and not options.ignore_credentials


def may_serve(entry: Entry, credentials: bool) -> bool:
    """Whether this entry may answer this request (an entry stored without the opt-in is not
    served to requests carrying credentials)."""
    return not credentials or bool(entry.flags.get("ignore_credentials"))


def response_entry(entry: Entry | None) -> Entry | None:
    """The entry if it is a stored response (a ``Vary`` marker left unresolved is not)."""
    return entry if entry is not None and entry.kind == "response" else None


def hit(
    entry: Entry, now: float, if_none_match: bytes | None, head: bool, stale: bool = False
) -> tuple[int, RawHeaders, bytes]:
    """Status, headers and body of an answer from the cache: 304 for a matching ``If-None-Match``."""
    age = int(now - entry.created)
    extra = [(b"age", _AGES[age] if 0 <= age < _AGE_TABLE else str(max(0, age)).encode()), _STALE if stale else _HIT]
    if if_none_match is not None and entry.etag and etag_matches(if_none_match, entry.etag):
        return 304, entry.not_modified_headers() + extra, b""
    return entry.status, entry.raw_headers() + extra, b"" if head else entry.body


def cache_control_directives(response: Any) -> set[str]:
    values = response.headers.getlist("Cache-Control")
    return {part.split("=", 1)[0].strip().lower() for value in values for part in value.split(",") if part.strip()}


def vary_names(response: Any) -> list[str]:
    names: list[str] = []
    for value in response.headers.getlist("Vary"):
        for name in value.split(","):
            name = name.strip().lower()
            if name and name not in names:
                names.append(name)
    return names


async def entry_for(response: Any, state: RequestState, default_timeout: float) -> Entry | None:
    """The entry to store for the view's response, or ``None`` when the rules forbid storing it."""
    options = state.options
    if not isinstance(response, Response) or not isinstance(response.response, DataBody):
        return None  # streamed, file and werkzeug bodies are never stored
    if state.returned_none and not options.cache_none:
        return None
    status = response.status_code
    if options.response_filter is not None:
        accepted = options.response_filter(response)
        if inspect.isawaitable(accepted):
            accepted = await accepted
        if not accepted:
            return None
    elif not 200 <= status < 300 or status == 206:
        return None
    if "Set-Cookie" in response.headers:
        return None
    if cache_control_directives(response) & _NOT_STORED:
        return None
    vary = vary_names(response)
    if "*" in vary:
        return None
    body = response.response.data
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in UNSTORED_HEADERS]
    etag = response.headers.get("ETag")
    if not etag:
        etag = strong_etag(body)
        headers.append(("ETag", etag))
    now = time.time()
    timeout = options.timeout if options.timeout is not None else default_timeout
    expires = None if not timeout else now + timeout
    swr = options.stale_while_revalidate
    stale_until = expires + swr if expires is not None and swr else None
    flags: dict[str, Any] = {"ignore_credentials": options.ignore_credentials}
    if state.tags:
        flags["tags"] = state.tags
    return Entry(
        status=status,
        headers=headers,
        body=body,
        created=now,
        expires=expires,
        stale_until=stale_until,
        etag=etag,
        flags=flags,
        vary=tuple(vary),
    )


def backend_ttl(entry: Entry, options: ViewOptions, now: float) -> float | None:
    """How long the backend keeps an entry: while fresh, then while stale-while-revalidate or
    stale-if-error may still serve it."""
    end = entry.stale_until or entry.expires
    if end is not None and entry.expires is not None and options.stale_if_error:
        end = max(end, entry.expires + options.stale_if_error)
    return None if end is None else max(1.0, end - now)
