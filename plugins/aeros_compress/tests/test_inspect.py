"""The decision the middleware takes from a response's start message, checked against the rules
written out plainly (the module docstring of :mod:`aeros_compress.middleware`), for many messages:
header names in any case, repeated, unparsable lengths, every skip rule."""

from __future__ import annotations

from typing import Any

from aeros_compress.middleware import CompressMiddleware
from hypothesis import given, settings
from hypothesis import strategies as st

from aeros import Br, Gzip


def reference(mw: CompressMiddleware, status: int, headers: list[tuple[bytes, bytes]]) -> tuple[Any, ...] | None:
    """``(accepting, size, etag, vary_done)`` for a compressible response, ``None`` for one that passes."""
    if status < 200 or status in (204, 206, 304):
        return None
    lowered = [(name.lower(), value) for name, value in headers]
    for name, value in lowered:
        if name == b"content-encoding" and value.strip().lower() != b"identity":
            return None
        if name == b"cache-control" and b"no-transform" in value.lower():
            return None
    sizes = []
    for name, value in lowered:
        if name == b"content-length":
            try:
                sizes.append(int(value))
            except ValueError:
                sizes.append(None)
    if any(size is not None and (size <= 0 or size < mw.min_size) for size in sizes):
        return None  # empty, or under every algorithm's min_size (any length the response gives)
    size = sizes[-1] if sizes else None
    types = [value for name, value in lowered if name == b"content-type"]
    if not types:
        return None
    mimetype = types[-1].split(b";", 1)[0].strip().lower().decode("latin-1")
    accepting = tuple(
        i for i, a in enumerate(mw.algorithms) if a.matches(mimetype) and (size is None or size >= a.min_size)
    )
    if not accepting:
        return None
    etags = [value for name, value in lowered if name == b"etag"]
    vary_done = any(
        token.strip() in (b"accept-encoding", b"*")
        for name, value in lowered
        if name == b"vary"
        for token in value.lower().split(b",")
    )
    return accepting, size, etags[-1] if etags else None, vary_done


def any_case(name: bytes) -> st.SearchStrategy[bytes]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: bytes(c - 32 if up and 97 <= c <= 122 else c for c, up in zip(name, upper))
    )


_HEADER = st.one_of(
    st.tuples(
        any_case(b"content-type"), st.sampled_from([b"text/html; charset=utf-8", b"image/png", b"APPLICATION/JSON"])
    ),
    st.tuples(
        any_case(b"content-length"), st.sampled_from([b"0", b"10", b"499", b"500", b"800", b"5000", b"x", b" 900"])
    ),
    st.tuples(any_case(b"etag"), st.sampled_from([b'"a"', b'W/"b"'])),
    st.tuples(any_case(b"content-encoding"), st.sampled_from([b"identity", b" Identity ", b"gzip", b"br"])),
    st.tuples(any_case(b"cache-control"), st.sampled_from([b"max-age=60", b"No-Transform", b"public, no-transform"])),
    st.tuples(any_case(b"vary"), st.sampled_from([b"Accept-Encoding", b"cookie", b"*", b"cookie, accept-encoding"])),
    st.tuples(st.sampled_from([b"age", b"x-cache", b"X-Request-Id", b"server", b"123"]), st.just(b"1")),
)


@settings(max_examples=800, deadline=None)
@given(
    st.sampled_from([100, 200, 201, 204, 206, 304, 404, 500]),
    st.lists(_HEADER, max_size=8),
    st.sampled_from([(800, 500), (0, 500), (0, 0)]),
)
def test_the_decision_follows_the_rules(
    status: int, headers: list[tuple[bytes, bytes]], min_sizes: tuple[int, int]
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    mw = CompressMiddleware(app, [Gzip(min_size=min_sizes[0]), Br(min_size=min_sizes[1])])
    message = {"type": "http.response.start", "status": status, "headers": headers}
    _, decided = mw.inspect_start(message, None)
    assert decided == reference(mw, status, headers)
