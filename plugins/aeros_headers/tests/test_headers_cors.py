"""CORS per the Fetch standard, against a real server."""

from __future__ import annotations

import re

import httpx
import pytest

from aeros import Cors, WebServer

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"


def make_app(cors, **options) -> WebServer:
    app = WebServer(__name__, cors=cors, **options)

    @app.route("/data", methods=["GET", "PUT", "DELETE"])
    async def data():
        return "data", 200, {"X-Total": "3"}

    @app.route("/varies")
    async def varies():
        return "v", 200, {"Vary": "Accept-Encoding"}

    @app.route("/own-cors")
    async def own_cors():
        return "o", 200, {"Access-Control-Allow-Origin": "https://chosen.by.view"}

    return app


def preflight(url: str, origin: str, method: str = "PUT", headers: str | None = None) -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return httpx.options(url, headers=asked, timeout=10)


def vary_tokens(response: httpx.Response) -> set[str]:
    return {token.strip().lower() for value in response.headers.get_list("vary") for token in value.split(",")}


@pytest.fixture
def credentialed(serve):
    policy = {
        "origins": [ALLOWED],
        "credentials": True,
        "methods": ["GET", "PUT"],
        "headers": ["X-Token", "Content-Type"],
        "expose_headers": ["X-Total"],
        "max_age": 120,
    }
    return serve(make_app(policy))


def test_preflight_from_an_allowed_origin(credentialed):
    response = preflight(credentialed.url + "/data", ALLOWED, "PUT", "x-token, content-type")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "PUT"}
    assert response.headers["access-control-allow-headers"] == "x-token, content-type"
    assert response.headers["access-control-max-age"] == "120"
    assert {"origin", "access-control-request-method", "access-control-request-headers"} <= vary_tokens(response)
    assert response.content == b""
    assert "content-length" not in response.headers  # RFC 9110: never on a 204


@pytest.mark.parametrize(
    "origin, method, headers, reason",
    [
        (OTHER, "PUT", None, "origin"),
        (ALLOWED, "DELETE", None, "method"),
        (ALLOWED, "PUT", "x-token, x-secret", "x-secret"),
    ],
)
def test_preflight_refused(credentialed, origin, method, headers, reason):
    response = preflight(credentialed.url + "/data", origin, method, headers)
    assert response.status_code == 403
    assert reason in response.text
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


def test_safelisted_methods_need_no_listing(credentialed):
    # POST is CORS-safelisted, so a preflight asking for it passes even though methods omits it.
    assert preflight(credentialed.url + "/data", ALLOWED, "POST").status_code == 204


def test_actual_request_from_an_allowed_origin_with_credentials(credentialed):
    response = httpx.get(credentialed.url + "/data", headers={"Origin": ALLOWED}, timeout=10)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Total"
    assert "origin" in vary_tokens(response)


def test_actual_request_from_a_disallowed_origin_gets_no_cors_headers(credentialed):
    response = httpx.get(credentialed.url + "/data", headers={"Origin": OTHER}, timeout=10)
    assert response.status_code == 200  # the server answers; the browser hides it
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    assert "origin" in vary_tokens(response)


def test_no_origin_header_no_cors_but_vary(credentialed):
    response = httpx.get(credentialed.url + "/data", timeout=10)
    assert "access-control-allow-origin" not in response.headers
    assert "origin" in vary_tokens(response)


def test_error_responses_carry_cors_too(credentialed):
    response = httpx.get(credentialed.url + "/missing", headers={"Origin": ALLOWED}, timeout=10)
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_vary_is_merged_with_the_views_vary(credentialed):
    response = httpx.get(credentialed.url + "/varies", headers={"Origin": ALLOWED}, timeout=10)
    assert response.headers.get_list("vary") == ["Accept-Encoding, Origin"]


def test_a_view_that_sets_cors_itself_is_left_alone(credentialed):
    response = httpx.get(credentialed.url + "/own-cors", headers={"Origin": ALLOWED}, timeout=10)
    assert response.headers.get_list("access-control-allow-origin") == ["https://chosen.by.view"]


@pytest.mark.parametrize("cors", [True, {"origins": "*"}, Cors()])
def test_any_origin_without_credentials(serve, cors):
    server = serve(make_app(cors))
    response = httpx.get(server.url + "/data", headers={"Origin": OTHER}, timeout=10)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" not in vary_tokens(response)  # the answer does not depend on the origin
    answered = preflight(server.url + "/data", OTHER, "DELETE", "x-anything")
    assert answered.status_code == 204
    assert answered.headers["access-control-allow-origin"] == "*"
    assert answered.headers["access-control-allow-headers"] == "x-anything"


def test_any_origin_with_credentials_is_refused_at_construction():
    with pytest.raises(ValueError, match="credentials"):
        WebServer(__name__, cors={"origins": "*", "credentials": True})
    with pytest.raises(ValueError, match="credentials"):
        Cors(origins=["*"], credentials=True)


@pytest.mark.parametrize(
    "policy",
    [
        {"origins": ["https://example.com/path"]},
        {"origins": ["https://*.example.com"]},
        {"origins": [ALLOWED], "credentials": True, "expose_headers": "*"},
        {"origins": [ALLOWED], "max_age": -1},
        {"origins": [ALLOWED], "headers": ["bad header"]},
    ],
)
def test_impossible_policies_fail_at_construction(policy):
    with pytest.raises(ValueError):
        WebServer(__name__, cors=policy)


def test_unknown_cors_keyword_fails_at_construction():
    with pytest.raises(TypeError):
        WebServer(__name__, cors={"origin": [ALLOWED]})


def test_configured_origins_are_normalised(serve):
    server = serve(make_app({"origins": ["HTTPS://App.Example.com/"]}))
    response = httpx.get(server.url + "/data", headers={"Origin": ALLOWED}, timeout=10)
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_regex_origins_match_in_full(serve):
    server = serve(make_app({"origins": [re.compile(r"https://[a-z0-9-]+\.example\.com")], "credentials": True}))
    good = httpx.get(server.url + "/data", headers={"Origin": "https://tenant-1.example.com"}, timeout=10)
    assert good.headers["access-control-allow-origin"] == "https://tenant-1.example.com"
    assert good.headers["access-control-allow-credentials"] == "true"
    for origin in ("https://tenant-1.example.com.attacker.net", "http://tenant-1.example.com", "https://example.com"):
        bad = httpx.get(server.url + "/data", headers={"Origin": origin}, timeout=10)
        assert "access-control-allow-origin" not in bad.headers, origin


def test_callable_origins(serve):
    asked = []

    def allow(origin: str) -> bool:
        asked.append(origin)
        return origin.endswith(":3000")

    server = serve(make_app({"origins": allow}))
    good = httpx.get(server.url + "/data", headers={"Origin": "http://localhost:3000"}, timeout=10)
    bad = httpx.get(server.url + "/data", headers={"Origin": "http://localhost:4000"}, timeout=10)
    assert good.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-origin" not in bad.headers
    assert asked == ["http://localhost:3000", "http://localhost:4000"]


def test_a_failing_origin_callable_refuses_the_origin(serve):
    def broken(origin: str) -> bool:
        raise LookupError("tenant database is down")

    server = serve(make_app({"origins": broken}))
    response = httpx.get(server.url + "/data", headers={"Origin": ALLOWED}, timeout=10)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_per_route_policy_replaces_the_app_policy(serve):
    partner = "https://partner.example.org"
    app = WebServer(__name__, cors={"origins": [ALLOWED]})

    @app.route("/public")
    async def public():
        return "public"

    @app.route("/partner", methods=["GET", "PATCH"])
    @Cors(origins=[partner], credentials=True, methods=["PATCH"])
    async def partner_only():
        return "partner"

    @Cors(origins=[])  # above the route decorator works too: it marks the same function
    @app.route("/private")
    async def private():
        return "private"

    server = serve(app)

    def origin_for(path: str, origin: str):
        response = httpx.get(server.url + path, headers={"Origin": origin}, timeout=10)
        return response.headers.get("access-control-allow-origin")

    assert origin_for("/public", ALLOWED) == ALLOWED
    assert origin_for("/public", partner) is None
    assert origin_for("/partner", partner) == partner
    assert origin_for("/partner", ALLOWED) is None
    assert origin_for("/private", ALLOWED) is None

    ok = preflight(server.url + "/partner", partner, "PATCH")
    assert ok.status_code == 204 and ok.headers["access-control-allow-credentials"] == "true"
    assert preflight(server.url + "/partner", ALLOWED, "PATCH").status_code == 403
    assert preflight(server.url + "/public", partner, "PUT").status_code == 403
    assert preflight(server.url + "/public", ALLOWED, "PUT").status_code == 204


def test_per_route_policy_without_an_app_policy(serve):
    app = WebServer(__name__)

    @app.route("/open")
    @Cors(origins="*")
    async def open_view():
        return "open"

    @app.route("/plain")
    async def plain():
        return "plain"

    server = serve(app)
    assert httpx.get(server.url + "/open", headers={"Origin": OTHER}).headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in httpx.get(server.url + "/plain", headers={"Origin": OTHER}).headers
    # No policy for /plain: the preflight goes to Quart, which answers OPTIONS without CORS.
    answered = preflight(server.url + "/plain", OTHER, "GET")
    assert answered.status_code == 200 and "access-control-allow-origin" not in answered.headers


def test_per_route_policy_on_a_method_view(serve):
    from quart.views import MethodView

    app = WebServer(__name__)

    @Cors(origins=[ALLOWED])
    class Items(MethodView):
        async def get(self):
            return "items"

    app.add_url_rule("/items", view_func=Items.as_view("items"))
    server = serve(app)
    allowed = httpx.get(server.url + "/items", headers={"Origin": ALLOWED}, timeout=10)
    refused = httpx.get(server.url + "/items", headers={"Origin": OTHER}, timeout=10)
    assert allowed.text == "items" and allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "access-control-allow-origin" not in refused.headers
