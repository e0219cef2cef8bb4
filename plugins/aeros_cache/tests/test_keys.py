"""Cache keys are injective: two requests a view can tell apart never share an entry.

Every pair of issue 12 is sent to a real server of every installed backend, through the ASGI
edge and through Quart, with a raw socket (so that a request without ``Host`` can be sent).
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aeros_cache.key import base_key, variant_key
from hypothesis import given, settings
from hypothesis import strategies as st
from quart import request
from werkzeug.datastructures import MultiDict

from aeros import SimpleCache, WebServer
from aeros_core.testing import installed_backends

# (first request target, second request target, whether each sends "Host: <server address>")
PAIRS = [
    pytest.param(("/s?a=1&a=2", True), ("/s?a=2&a=1", True), id="repeated-keys-reordered"),
    pytest.param(("/s?q=%FF", True), ("/s?q=%FE", True), id="invalid-utf8-escapes"),
    pytest.param(("/s?name=M%FDller", True), ("/s?name=M%FCller", True), id="latin1-escapes"),
    pytest.param(("/s", True), ("/s", False), id="host-vs-no-host"),
    pytest.param(("/s", False), ("/s", True), id="no-host-vs-host"),
]


def echo_app(edge: bool) -> WebServer:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    app.cache.edge = edge

    @app.route("/s")
    @app.cache(timeout=600)
    async def s() -> dict:
        return {
            "args": list(request.args.items(multi=True)),
            "query": request.query_string.decode("latin-1"),
            "host": request.headers.get("Host"),
        }

    return app


def raw_get(port: int, target: str, with_host: bool) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 GET on a fresh connection (read to the close), ``Host`` only if asked."""
    head = f"GET {target} HTTP/1.0\r\n"
    if with_host:
        head += f"Host: 127.0.0.1:{port}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("backend", installed_backends())
@pytest.mark.parametrize("edge", [True, False], ids=["edge", "quart"])
@pytest.mark.parametrize("first,second", PAIRS)
def test_requests_a_view_can_tell_apart_never_share_an_entry(
    serve: Any, backend: str, edge: bool, first: tuple[str, bool], second: tuple[str, bool]
) -> None:
    app = echo_app(edge)
    server = serve(app, server=backend)
    if edge:  # the first request of a path teaches the edge index; later ones are looked up there
        assert raw_get(server.port, "/s?warm-up", True)[0] == 200
    answers = []
    for target, with_host in (first, second):
        status, headers, body = raw_get(server.port, target, with_host)
        assert status == 200 and headers["x-cache"] == "MISS", (target, with_host, headers)
        answers.append(json.loads(body))
    assert answers[0] != answers[1]
    # each has its own entry: asked again, each gets its own answer back as a hit
    edge_hits = app.cache.stats["edge_hits"]
    for (target, with_host), answer in zip((first, second), answers):
        status, headers, body = raw_get(server.port, target, with_host)
        assert headers["x-cache"] == "HIT" and json.loads(body) == answer
    assert app.cache.stats["edge_hits"] == edge_hits + (2 if edge else 0)


# --- the property: different request.args (a MultiDict, order kept) -> different keys -------

_QUERY_BYTES = st.lists(
    st.sampled_from([b"a", b"b", b"=", b"&", b"%", b"%FF", b"%FE", b"%61", b"+", b"%20", b" ", b"1", b"|", b";"]),
    max_size=12,
).map(b"".join)


def args_of(query: bytes) -> list[tuple[str, str]]:
    """``request.args`` as Quart/werkzeug parse it, as a list that keeps every order."""
    parsed = MultiDict(parse_qsl(query.decode(), keep_blank_values=True, errors="werkzeug.url_quote"))
    return list(parsed.items(multi=True))


def key_of(query: bytes, host: bytes | None) -> str:
    scope = {"scheme": "http", "query_string": query, "server": ("127.0.0.1", 8000)}
    return base_key("app.view", "view//s", scope, True, host)


@settings(max_examples=500, deadline=None)
@given(_QUERY_BYTES, _QUERY_BYTES)
def test_queries_with_different_args_never_share_a_key(one: bytes, two: bytes) -> None:
    if args_of(one) != args_of(two):
        assert key_of(one, b"h") != key_of(two, b"h")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=8)), st.one_of(st.none(), st.binary(max_size=8)), _QUERY_BYTES)
def test_hosts_as_sent_never_share_a_key(one: bytes | None, two: bytes | None, query: bytes) -> None:
    if one != two:
        assert key_of(query, one) != key_of(query, two)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="a|%=/", max_size=6), st.text(alphabet="a|%=/", max_size=6), _QUERY_BYTES, _QUERY_BYTES)
def test_components_cannot_forge_a_separator(prefix1: str, prefix2: str, query1: bytes, query2: bytes) -> None:
    scope1 = {"scheme": "http", "query_string": query1}
    scope2 = {"scheme": "http", "query_string": query2}
    if (prefix1, query1) != (prefix2, query2):
        assert base_key("v", prefix1, scope1, True, b"h") != base_key("v", prefix2, scope2, True, b"h")


def test_long_queries_are_hashed_apart_from_short_ones() -> None:
    long_query = b"a=" + b"x" * 1000
    assert key_of(long_query, b"h") != key_of(long_query + b"y", b"h")
    assert len(key_of(long_query, b"h")) < 200


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([b"accept", b"x"]), st.binary(max_size=6)), max_size=3), st.binary(max_size=6)
)
def test_vary_values_cannot_run_into_each_other(headers: list[tuple[bytes, bytes]], other: bytes) -> None:
    changed = headers + [(b"accept", other)]

    def joined(hs: list[tuple[bytes, bytes]]) -> list[bytes]:
        return [v for k, v in hs if k == b"accept"]

    if b", ".join(joined(headers)) != b", ".join(joined(changed)):
        assert variant_key("k", ["accept", "x"], headers) != variant_key("k", ["accept", "x"], changed)


# --- the edge keeps the key of the last request of each path: never the wrong one ------------

_SCHEMES = st.sampled_from(["http", "https", "h|t"])
_HOSTS = st.sampled_from([None, b"a", b"a:1", b"A", b"b|%"])
_QUERIES = st.sampled_from([b"", b"a=1", b"a=2", b"%7C"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_SCHEMES, _HOSTS, _QUERIES), min_size=1, max_size=12), st.booleans())
def test_the_edge_key_of_each_request_is_its_own(
    requests: list[tuple[str, bytes | None, bytes]], query_string: bool
) -> None:
    from aeros_cache.edge import Edge, EdgeRoute
    from aeros_cache.key import prefix_key
    from aeros_cache.options import ViewOptions

    options = ViewOptions(
        view_id="app.view", timeout=60, key_prefix="view/%s", unless=None, forced_update=None,
        response_filter=None, query_string=query_string, cache_none=False, ignore_credentials=False,
        stale_while_revalidate=None,
    )  # fmt: skip
    route = EdgeRoute(options, prefix_key(options.view_id, options.prefix_for("/s")))
    for scheme, host, query in requests:  # one route, request after request, as the edge sees them
        headers = [] if host is None else [(b"host", host)]
        scope = {"scheme": scheme, "query_string": query, "headers": headers}
        found = Edge.request(route, scope)
        assert found is not None
        assert found[0] == base_key("app.view", "view//s", scope, query_string, host)
