"""trusted_proxies: the real client, scheme and host from Forwarded / X-Forwarded-*, on every backend."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import request, url_for

import aeros
from aeros import WebServer
from aeros_core.builtins.proxies import (
    ForwardedViews,
    TrustedProxies,
    client_index,
    forwarded_view,
    parse_forwarded,
    parse_node,
    rewrite,
)
from aeros_core.runner.settings import ServerSettings
from aeros_core.testing import installed_backends

WATCHED = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"})
KEEP = frozenset({b"x-request-id"})


def scope_with(headers: list[tuple[bytes, bytes]], client: tuple[str, int] = ("127.0.0.1", 5000)) -> dict:
    return {
        "type": "http",
        "scheme": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"host", b"internal:8000"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }


LOCAL = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
VIEWS = ForwardedViews(LOCAL)


# --- the parsers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, node",
    [
        ("192.0.2.1", ("192.0.2.1", 0)),
        ("192.0.2.1:8080", ("192.0.2.1", 8080)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("[2001:db8::1]:4711", ("2001:db8::1", 4711)),
        ("unknown", ("unknown", 0)),
        ("_hidden", ("_hidden", 0)),
        ("evil", None),
        ("192.0.2.1:99999", None),
        ("[192.0.2.1]:80", None),
        ("[2001:db8::1", None),
        ("", None),
    ],
)
def test_parse_node(text: str, node: Any):
    assert parse_node(text) == node


def test_parse_forwarded_elements_quoting_and_case():
    elements = parse_forwarded(['for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"'])
    assert elements == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711"},
    ]
    # several headers are one list; a quoted comma stays inside its value
    assert parse_forwarded(['for="_a,b"', "for=10.0.0.1"]) == [{"for": "_a,b"}, {"for": "10.0.0.1"}]


@pytest.mark.parametrize(
    "value",
    ["for", "for=", "=x", "for=1.2.3.4;;", 'for="unterminated', "for=1.2.3.4;for=5.6.7.8", "for=a b", ""],
)
def test_parse_forwarded_refuses_malformed(value: str):
    assert parse_forwarded([value]) is None


def test_walk_stops_at_the_first_untrusted_address_from_the_right():
    chain = [("203.0.113.5", 0), ("198.51.100.7", 0), ("10.1.1.1", 0), ("10.2.2.2", 0)]
    assert client_index(chain, LOCAL) == 1  # 198.51.100.7 is not trusted: the client
    assert client_index([("10.0.0.1", 0), ("10.0.0.2", 0)], LOCAL) == 0  # all trusted: the leftmost


def test_trust_matches_cidrs_mapped_addresses_and_star():
    assert LOCAL("10.200.3.4") and LOCAL("::ffff:127.0.0.1") and not LOCAL("11.0.0.1") and not LOCAL("evil")
    everyone = TrustedProxies(["*"])
    assert everyone("203.0.113.1") and everyone("::1") and not everyone("unknown")


def test_x_forwarded_proto_and_host_align_with_the_chosen_hop():
    headers = {
        b"x-forwarded-for": ["203.0.113.5, 10.0.0.1"],
        b"x-forwarded-proto": ["https, http"],
        b"x-forwarded-host": ["shop.example"],
    }
    assert forwarded_view(headers, LOCAL) == (("203.0.113.5", 0), "https", "shop.example")


def test_forwarded_wins_over_x_forwarded():
    headers = {b"forwarded": ["for=198.51.100.1;proto=https;host=a.example"], b"x-forwarded-for": ["203.0.113.9"]}
    assert forwarded_view(headers, LOCAL) == (("198.51.100.1", 0), "https", "a.example")


# --- the scope -------------------------------------------------------------------------------


def test_untrusted_peer_headers_are_removed_not_applied():
    scope = scope_with(
        [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-host", b"evil"), (b"x-request-id", b"mine"), (b"a", b"b")],
        client=("203.0.113.50", 1234),
    )
    out = rewrite(scope, VIEWS, False, False, WATCHED, KEEP)
    assert out["client"] == ("203.0.113.50", 1234)
    assert out["headers"] == [(b"host", b"internal:8000"), (b"a", b"b")]
    assert scope["headers"][1] == (b"x-forwarded-for", b"1.2.3.4"), "the server's scope is not mutated"


def test_trusted_peer_rewrites_client_scheme_host_and_server():
    scope = scope_with(
        [
            (b"x-forwarded-for", b"198.51.100.2"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"shop.example"),
        ]
    )
    out = rewrite(scope, VIEWS, True, True, WATCHED, KEEP)
    assert out["client"] == ("198.51.100.2", 0) and out["scheme"] == "https"
    assert out["server"] == ("shop.example", 443)
    assert (b"host", b"shop.example") in out["headers"] and (b"host", b"internal:8000") not in out["headers"]


def test_no_forwarding_headers_costs_no_copy():
    scope = scope_with([(b"user-agent", b"x")])
    assert rewrite(scope, VIEWS, True, True, WATCHED, KEEP) is scope


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-forwarded-for", b"not-an-ip")],
        [(b"x-forwarded-for", b"1.2.3.4,,5.6.7.8")],
        [(b"x-forwarded-for", b", ".join([b"10.0.0.1"] * 40))],
        [(b"forwarded", b"for=1.2.3.4;proto")],
        [(b"forwarded", b"by=1.2.3.4")],
        [(b"x-forwarded-for", b"\xff\xfe")],
    ],
)
def test_malformed_headers_from_a_trusted_peer_are_ignored_and_removed(headers):
    out = rewrite(scope_with(headers), VIEWS, True, True, WATCHED, KEEP)
    assert out["client"] == ("127.0.0.1", 5000) and out["scheme"] == "http"
    assert not [name for name, _ in out["headers"] if name.startswith(b"x-forwarded") or name == b"forwarded"]


def test_bad_proto_and_host_values_are_not_applied():
    out = rewrite(
        scope_with(
            [(b"x-forwarded-for", b"198.51.100.2"), (b"x-forwarded-proto", b"gopher"), (b"x-forwarded-host", b"a b/c")]
        ),
        VIEWS,
        True,
        True,
        WATCHED,
        KEEP,
    )
    assert out["client"] == ("198.51.100.2", 0) and out["scheme"] == "http"
    assert (b"host", b"internal:8000") in out["headers"]


header_names = st.sampled_from(
    [b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"]
)
header_values = st.one_of(
    st.binary(max_size=80),
    st.lists(
        st.sampled_from(
            [
                "for=",
                "proto=",
                "host=",
                ";",
                ",",
                '"',
                "[",
                "]",
                ":",
                "1.2.3.4",
                "::1",
                "10.0.0.1",
                "_x",
                " ",
                "https",
                "\\",
            ]
        ),
        max_size=20,
    ).map(lambda parts: "".join(parts).encode()),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(header_names, header_values), max_size=6), st.booleans())
def test_fuzz_rewrite_never_raises_and_yields_a_sane_scope(headers, trusted_peer):
    client = ("127.0.0.1", 5000) if trusted_peer else ("203.0.113.1", 5000)
    out = rewrite(scope_with(headers, client), VIEWS, trusted_peer, trusted_peer, WATCHED, KEEP)
    assert out["scheme"] in ("http", "https")
    host, port = out["client"]
    assert isinstance(port, int) and 0 <= port <= 65535
    if host not in ("unknown",) and not host.startswith("_"):
        ipaddress.ip_address(host)
    if not trusted_peer:
        assert out["client"] == client and [name for name, _ in out["headers"]] == [b"host"]
    assert sum(1 for name, _ in out["headers"] if name == b"host") == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from([*header_names.elements, b"host", b"accept"]), header_values), max_size=6),
    st.booleans(),
)
def test_watching_host_finds_it_in_the_same_pass_with_the_same_result(headers, trusted_peer):
    """The edge adds Host to the watched names (one pass finds it); the scope is the same."""
    client = ("127.0.0.1", 5000) if trusted_peer else ("203.0.113.1", 5000)
    scope = scope_with(headers, client)
    plain = rewrite(dict(scope), VIEWS, trusted_peer, trusted_peer, WATCHED, KEEP)
    assert rewrite(dict(scope), VIEWS, trusted_peer, trusted_peer, WATCHED | {b"host"}, KEEP) == plain


one_hop_values = st.one_of(
    st.sampled_from([b"203.0.113.7", b" 198.51.100.1 ", b"10.0.0.1", b"1.2.3", b"1.2.3.4.5", b"", b"unknown"]),
    st.binary(max_size=20),
)
proto_or_host = st.one_of(
    st.none(),
    st.sampled_from([b"https", b"HTTP ", b"ftp", b"https, http", b"shop.example", b"a.example:8443", b"[::1]:80"]),
    st.binary(max_size=20),
)


@settings(max_examples=400, deadline=None)
@given(one_hop_values, proto_or_host, proto_or_host)
def test_the_one_hop_shortcut_gives_what_the_general_parser_gives(client, proto, host):
    headers = [(b"x-forwarded-for", client)]
    if proto is not None:
        headers.append((b"x-forwarded-proto", proto))
    if host is not None:
        headers.append((b"x-forwarded-host", host))
    views = ForwardedViews(LOCAL)
    for _ in range(2):  # computed, then remembered
        assert views(tuple(headers)) == views._parsed(tuple(headers))


def test_the_caches_stay_bounded_under_many_client_addresses_and_answer_right_after_eviction():
    from aeros_core.builtins import proxies

    trusted = TrustedProxies(["10.0.0.0/8"])
    views = ForwardedViews(trusted)
    peers = [f"203.0.{n >> 8 & 255}.{n & 255}" for n in range(3 * proxies._CACHE_LIMIT)]
    for number, peer in enumerate(peers):
        assert trusted(peer) is False
        proto = b"https" if number % 2 else b"http"
        host = f"h{number}.example".encode()
        view = views(((b"x-forwarded-for", peer.encode()), (b"x-forwarded-proto", proto), (b"x-forwarded-host", host)))
        assert view == ((peer, 0), proto.decode(), host, (f"h{number}.example", None))
        assert len(trusted._known) <= proxies._CACHE_LIMIT
        assert len(views._known) <= proxies._CACHE_LIMIT and len(views._parts) <= proxies._CACHE_LIMIT
    # the first ones were evicted: asked again, the verdicts are the same
    assert peers[0] not in trusted._known
    assert [trusted(peer) for peer in ("10.1.2.3", peers[0], "10.255.0.1")] == [True, False, True]
    first = ((b"x-forwarded-for", b"203.0.0.0"), (b"x-forwarded-proto", b"http"), (b"x-forwarded-host", b"h0.example"))
    assert first not in views._known
    assert views(first) == (("203.0.0.0", 0), "http", b"h0.example", ("h0.example", None))
    # a chain walks through trusted hops whatever the caches hold
    chain = ((b"x-forwarded-for", b"198.51.100.9, 10.0.0.2"),)
    assert views(chain) == (("198.51.100.9", 0), None, None, None)


# --- on a real server, every backend ---------------------------------------------------------


@pytest.fixture
def app() -> WebServer:
    app = WebServer(__name__)

    @app.route("/who")
    async def who() -> dict[str, Any]:
        return {
            "addr": request.remote_addr,
            "scheme": request.scheme,
            "host": request.host,
            "url": url_for("who", _external=True),
            "xff": request.headers.get("X-Forwarded-For"),
            "rid": aeros.request_id(),
        }

    return app


SPOOF = {
    "X-Forwarded-For": "203.0.113.66",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil",
    "X-Request-ID": "forged",
}


@pytest.mark.parametrize("server", installed_backends())
def test_trusted_proxy_sets_the_real_client_on_every_backend(serve, app, server, tmp_path):
    log = tmp_path / "access.log"
    running = serve(app, server=server, trusted_proxies="127.0.0.1", access_log_file=str(log), access_log_format="json")
    answer = httpx.get(
        running.url + "/who",
        headers={
            "X-Forwarded-For": "198.51.100.23",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example",
            "X-Request-ID": "lb-42",
        },
        timeout=10,
    ).json()
    assert answer == {
        "addr": "198.51.100.23",
        "scheme": "https",
        "host": "shop.example",
        "url": "https://shop.example/who",
        "xff": "198.51.100.23",
        "rid": "lb-42",
    }
    running.stop(timeout=10)
    assert '"client":"198.51.100.23"' in log.read_text() and '"request_id":"lb-42"' in log.read_text()


@pytest.mark.parametrize("server", installed_backends())
def test_spoofed_headers_from_an_untrusted_client_change_nothing(serve, app, server):
    running = serve(app, server=server, trusted_proxies="10.0.0.0/8")  # the test client (127.0.0.1) is not trusted
    answer = httpx.get(running.url + "/who", headers=SPOOF, timeout=10).json()
    assert answer["addr"] == "127.0.0.1" and answer["scheme"] == "http"
    assert answer["host"] == f"127.0.0.1:{running.port}" and answer["url"] == f"{running.url}/who"
    assert answer["xff"] is None, "a spoofed header must not reach the view"
    assert answer["rid"] != "forged" and len(answer["rid"]) == 32


def test_without_trusted_proxies_nothing_is_rewritten(serve, app):
    answer = httpx.get(serve(app).url + "/who", headers=SPOOF, timeout=10).json()
    assert answer["addr"] == "127.0.0.1" and answer["scheme"] == "http" and answer["host"] != "evil"
    assert answer["rid"] != "forged"


def test_hostile_values_never_5xx(serve, app):
    running = serve(app, trusted_proxies="*")
    hostile = [
        {"Forwarded": 'for="[::1'},
        {"Forwarded": "for=" + "a" * 5000},
        {"X-Forwarded-For": ",".join(["1.1.1.1"] * 500)},
        {"X-Forwarded-Host": "a" * 300},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Request-ID": "x" * 5000},
        {"X-Request-ID": "a\tb"},
    ]
    for headers in hostile:
        response = httpx.get(running.url + "/who", headers=headers, timeout=10)
        assert response.status_code == 200, headers
        assert response.json()["addr"] == "127.0.0.1"
        assert response.json()["host"] == f"127.0.0.1:{running.port}"


def test_a_bad_trusted_proxies_entry_is_an_error_at_start(app):
    with pytest.raises(ValueError, match="not-an-address"):
        app.run_in_thread(port=0, trusted_proxies="127.0.0.1,not-an-address")


def test_settings_read_trusted_proxies_from_the_environment():
    settings = ServerSettings.resolve({}, environ={"AEROS_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"})
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
