"""RFC 9111 safety rules: what is never stored, and who is never served from the cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from quart import Response, make_response, request, session

from aeros import SimpleCache, WebServer


def app_with(view_body: Callable[[], Any], **cache_keywords: Any) -> tuple[WebServer, list[int]]:
    app = WebServer(__name__, cache=SimpleCache(), disable_plugins=["hello"])
    app.secret_key = "test-secret"
    calls: list[int] = []

    @app.route("/v", methods=["GET", "POST", "PUT", "DELETE"])
    @app.cache(timeout=60, **cache_keywords)
    async def view() -> Any:
        calls.append(1)
        result = view_body()
        if hasattr(result, "__await__"):
            result = await result
        return result

    return app, calls


def fetch_twice(server: Any, method: str = "GET", **kwargs: Any) -> list[httpx.Response]:
    with httpx.Client(base_url=server.url) as client:
        return [client.request(method, "/v", **kwargs) for _ in range(3)]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head_are_cached(serve: Any, method: str) -> None:
    app, calls = app_with(lambda: "x")
    server = serve(app)
    responses = fetch_twice(server, method)
    assert all(r.status_code == 200 for r in responses)
    assert all("x-cache" not in r.headers for r in responses)
    assert len(calls) == 3
    assert httpx.get(server.url + "/v").headers["x-cache"] == "MISS"  # POST stored nothing


@pytest.mark.parametrize("status", [201, 204])
def test_other_2xx_are_stored(serve: Any, status: int) -> None:
    app, calls = app_with(lambda: ("", status))
    server = serve(app)
    responses = fetch_twice(server)
    assert [r.status_code for r in responses] == [status] * 3
    assert responses[-1].headers["x-cache"] == "HIT"
    assert len(calls) == 1


@pytest.mark.parametrize("status", [301, 404, 500, 503])
def test_non_2xx_are_not_stored(serve: Any, status: int) -> None:
    app, calls = app_with(lambda: ("nope", status, {"Location": "/elsewhere"}))
    server = serve(app)
    responses = fetch_twice(server)
    assert [r.status_code for r in responses] == [status] * 3
    assert len(calls) == 3


def test_view_exception_is_not_stored(serve: Any) -> None:
    def boom() -> Any:
        raise RuntimeError("boom")

    app, calls = app_with(boom)
    server = serve(app)
    assert [r.status_code for r in fetch_twice(server)] == [500] * 3
    assert len(calls) == 3


def test_set_cookie_is_never_stored(serve: Any) -> None:
    async def with_cookie() -> Response:
        response = await make_response("personal")
        response.set_cookie("id", "42")
        return response

    app, calls = app_with(with_cookie)
    server = serve(app)
    responses = fetch_twice(server)
    assert all(r.cookies.get("id") == "42" for r in responses)
    assert all(r.headers["x-cache"] == "MISS" for r in responses)
    assert len(calls) == 3


def test_session_write_is_never_stored(serve: Any) -> None:
    def touch_session() -> str:
        session["visits"] = session.get("visits", 0) + 1
        return "hi"

    app, calls = app_with(touch_session)
    server = serve(app)
    for _ in range(2):  # fresh clients: no Cookie header, so only Set-Cookie blocks storing
        assert "set-cookie" in httpx.get(server.url + "/v").headers
    assert len(calls) == 2


@pytest.mark.parametrize("directive", ["private", "no-store", "no-cache", "private, max-age=60"])
def test_cache_control_private_or_no_store_is_never_stored(serve: Any, directive: str) -> None:
    app, calls = app_with(lambda: Response("x", headers={"Cache-Control": directive}))
    server = serve(app)
    responses = fetch_twice(server)
    assert all(r.headers["cache-control"] == directive for r in responses)
    assert len(calls) == 3


@pytest.mark.parametrize("credential", [{"Authorization": "Bearer alice"}, {"Cookie": "session=alice"}])
def test_requests_with_credentials_bypass_the_cache(serve: Any, credential: dict) -> None:
    app, calls = app_with(lambda: f"for {request.headers.get('Authorization') or request.headers.get('Cookie')}")
    server = serve(app)
    # an anonymous entry exists...
    anonymous = [httpx.get(server.url + "/v") for _ in range(3)]
    assert anonymous[-1].headers["x-cache"] == "HIT"
    # ...but a request with credentials never gets it, and never stores its own answer
    for _ in range(2):
        personal = httpx.get(server.url + "/v", headers=credential)
        assert personal.headers["x-cache"] == "MISS"
        assert "alice" in personal.text
    assert httpx.get(server.url + "/v").text == anonymous[0].text
    assert len(calls) == 3


def test_ignore_credentials_opts_in(serve: Any) -> None:
    app, calls = app_with(lambda: "same for everyone", ignore_credentials=True)
    server = serve(app)
    for headers in ({"Authorization": "Bearer a"}, {"Cookie": "x=1"}, {}, {"Authorization": "Bearer b"}):
        assert httpx.get(server.url + "/v", headers=headers).text == "same for everyone"
    assert len(calls) == 1


def test_entry_stored_without_opt_in_is_not_served_to_credentials_at_the_edge(serve: Any) -> None:
    app, calls = app_with(lambda: "x")
    server = serve(app)
    for _ in range(3):
        httpx.get(server.url + "/v")
    assert app.cache.stats["edge_hits"] >= 1
    assert httpx.get(server.url + "/v", headers={"Authorization": "Basic eDp5"}).headers["x-cache"] == "MISS"
    assert len(calls) == 2


def test_streaming_responses_are_never_stored(serve: Any) -> None:
    async def chunks() -> Any:
        yield b"a"
        yield b"b"

    app, calls = app_with(lambda: Response(chunks()))
    server = serve(app)
    responses = fetch_twice(server)
    assert all(r.content == b"ab" for r in responses)
    assert len(calls) == 3


def test_per_request_headers_are_not_stored(serve: Any) -> None:
    app, calls = app_with(lambda: "x")
    server = serve(app)
    first, _, third = fetch_twice(server)
    assert third.headers["x-cache"] == "HIT"
    assert third.headers.get_list("x-cache") == ["HIT"]
    assert len(third.headers.get_list("date")) == 1
    assert len(third.headers.get_list("age")) == 1
