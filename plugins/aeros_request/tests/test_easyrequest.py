"""EasyRequest against a real server: request scoping under concurrency, body access, 400s."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from aeros import EasyRequest, WebServer


def make_app() -> WebServer:
    app = WebServer(__name__)

    @app.route("/echo")
    async def echo(request: EasyRequest):
        """Reads each value, yields to other requests, reads again: all must stay its own."""
        first = (request.params["i"], EasyRequest.params["i"], request.headers["x-i"], EasyRequest.cookies["i"])
        await asyncio.sleep(random.uniform(0, 0.005))
        second = (EasyRequest.params["i"], request.params["i"], EasyRequest.headers["x-i"], request.cookies["i"])
        await asyncio.sleep(random.uniform(0, 0.005))
        return {"first": list(first), "second": list(second), "last": EasyRequest.params["i"]}

    @app.route("/decorated")
    @EasyRequest()
    async def decorated():
        await asyncio.sleep(random.uniform(0, 0.005))
        return {"q": EasyRequest.params.get("q"), "agent": EasyRequest.headers.get("x-agent")}

    @app.route("/decorated-injected")
    @EasyRequest()
    async def decorated_injected(req: EasyRequest):
        return {"q": req.params.get("q")}

    @app.route("/sync")
    def sync_view(request: EasyRequest):
        return {"q": request.params.get("q"), "class": EasyRequest.params.get("q"), "cookie": request.cookies.get("c")}

    @app.route("/sync-decorated")
    @EasyRequest()
    def sync_decorated():
        return {"q": EasyRequest.params.get("q")}

    @app.route("/with-args/<int:item>")
    async def with_args(item: int, request: EasyRequest):
        return {"item": item, "q": request.params.get("q")}

    @app.route("/json", methods=["POST"])
    async def json_body(request: EasyRequest):
        body = await request.json
        again = await EasyRequest.json
        return {"body": body, "same": body == again}

    @app.route("/form", methods=["POST"])
    async def form_body(request: EasyRequest):
        form = await request.form
        files = await request.files
        upload = files.get("upload")
        return {
            "name": form.get("name"),
            "tags": form.getlist("tag"),
            "file": upload.filename if upload else None,
            "content": upload.read().decode() if upload else None,
        }

    @app.route("/class-form", methods=["POST"])
    async def class_form():
        return {"name": (await EasyRequest.form).get("name")}

    return app


@pytest.fixture
def server(serve):
    return serve(make_app())


async def test_200_concurrent_requests_each_see_their_own_values(server):
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, dict]:
        response = await client.get("/echo", params={"i": str(i)}, headers={"X-I": str(i), "Cookie": f"i={i}"})
        assert response.status_code == 200, response.text
        return i, response.json()

    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
        results = await asyncio.gather(*(one(client, i) for i in range(200)))
    wrong = [
        (i, seen) for i, seen in results if seen != {"first": [str(i)] * 4, "second": [str(i)] * 4, "last": str(i)}
    ]
    assert not wrong, f"{len(wrong)} requests saw another request's values, e.g. {wrong[:3]}"


async def test_decorator_style_under_concurrency(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get("/decorated", params={"q": f"q{i}"}, headers={"X-Agent": f"a{i}"}) for i in range(50))
        )
    assert [r.json() for r in responses] == [{"q": f"q{i}", "agent": f"a{i}"} for i in range(50)]


def test_decorator_and_injection_together(server):
    assert httpx.get(server.url + "/decorated-injected", params={"q": "both"}).json() == {"q": "both"}


def test_sync_views(server):
    response = httpx.get(server.url + "/sync", params={"q": "s"}, headers={"Cookie": "c=k"})
    assert response.json() == {"q": "s", "class": "s", "cookie": "k"}
    assert httpx.get(server.url + "/sync-decorated", params={"q": "d"}).json() == {"q": "d"}


def test_injection_alongside_url_arguments(server):
    assert httpx.get(server.url + "/with-args/7", params={"q": "x"}).json() == {"item": 7, "q": "x"}


def test_json_body(server):
    response = httpx.post(server.url + "/json", json={"a": [1, 2], "b": None})
    assert response.json() == {"body": {"a": [1, 2], "b": None}, "same": True}
    vendor = httpx.post(server.url + "/json", content=b"[1]", headers={"Content-Type": "application/vnd.api+json"})
    assert vendor.json() == {"body": [1], "same": True}


@pytest.mark.parametrize(
    "content, content_type, message",
    [
        (b'{"a": ', "application/json", "not valid JSON"),
        (b"", "application/json", "empty"),
        (b'{"a": 1}', "text/plain", "Content-Type"),
        (b"a=1", "application/x-www-form-urlencoded", "Content-Type"),
    ],
)
def test_bad_json_is_a_400_with_a_clear_message(server, content, content_type, message):
    response = httpx.post(server.url + "/json", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert message in response.text


def test_form_and_files(server):
    response = httpx.post(
        server.url + "/form",
        data={"name": "aeros", "tag": ["a", "b"]},
        files={"upload": ("notes.txt", b"file body", "text/plain")},
    )
    assert response.json() == {"name": "aeros", "tags": ["a", "b"], "file": "notes.txt", "content": "file body"}
    urlencoded = httpx.post(server.url + "/form", data={"name": "plain"})
    assert urlencoded.json() == {"name": "plain", "tags": [], "file": None, "content": None}
    assert httpx.post(server.url + "/class-form", data={"name": "cls"}).json() == {"name": "cls"}


def test_outside_a_request_is_a_clear_error():
    with pytest.raises(RuntimeError, match="outside a request"):
        EasyRequest.params
    with pytest.raises(RuntimeError, match="outside a request"):
        EasyRequest().headers


def test_the_plugin_is_registered_through_its_entry_point():
    app = WebServer(__name__)
    info = {plugin.name: plugin for plugin in app.plugins}["request"]
    assert info.distribution == "aeros-request"
    assert not info.builtin


def test_json_errors_can_be_answered_in_the_apps_format(serve):
    from aeros import JSONBodyError

    app = make_app()

    @app.errorhandler(JSONBodyError)
    async def bad_json(error):
        return {"error": error.description}, 400

    response = httpx.post(serve(app).url + "/json", content=b"nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("The request body is not valid JSON")


async def test_sync_views_under_concurrency(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.get("/sync", params={"q": f"s{i}"}, headers={"Cookie": f"c=k{i}"}) for i in range(50))
        )
    assert [r.json() for r in responses] == [{"q": f"s{i}", "class": f"s{i}", "cookie": f"k{i}"} for i in range(50)]


def test_decorator_injects_where_the_plugin_is_disabled(serve):
    app = WebServer(__name__, disable_plugins=["request"])
    assert "request" not in {plugin.name for plugin in app.plugins}

    @app.route("/")
    @EasyRequest()
    async def view(request: EasyRequest):
        return {"q": request.params.get("q"), "class": EasyRequest.params.get("q")}

    assert httpx.get(serve(app).url + "/", params={"q": "no-plugin"}).json() == {"q": "no-plugin", "class": "no-plugin"}


def test_fields_are_read_only_on_instances():
    with pytest.raises(AttributeError, match="read-only"):
        EasyRequest().params = {}  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["hypercorn", "uvicorn"])
def test_websocket_routes_work_with_the_plugin_loaded(serve, backend):
    """Quart runs url_value_preprocessors with the *request* proxy during a websocket, so the
    plugin must not register one: a websocket route has to answer, not fail with a 500."""
    from websockets.sync.client import connect

    app = make_app()
    names = {plugin.name for plugin in app.plugins}
    assert "request" in names
    if backend != "hypercorn" and backend not in names:
        pytest.skip(f"the {backend} backend plugin is not installed")

    @app.websocket("/ws/<name>")
    async def ws_echo(name: str):
        from quart import websocket

        while True:
            message = await websocket.receive()
            await websocket.send(f"{name}: {message}")

    server = serve(app, server=backend)
    with connect(f"ws://127.0.0.1:{server.port}/ws/bot", open_timeout=5, close_timeout=5) as ws:
        for text in ("hi", "again"):
            ws.send(text)
            assert ws.recv(timeout=5) == f"bot: {text}"
    # and plain routes still inject on the same app
    assert httpx.get(server.url + "/with-args/3", params={"q": "y"}).json() == {"item": 3, "q": "y"}


def test_views_registered_every_way_are_injected(serve):
    """route (stacked twice on one view), add_url_rule, app.endpoint and blueprints."""
    from quart import Blueprint

    app = WebServer(__name__)

    @app.route("/one")
    @app.route("/two")
    async def twice(request: EasyRequest):
        return {"q": request.params.get("q")}

    async def added(request: EasyRequest):
        return {"q": request.params.get("q")}

    app.add_url_rule("/added", view_func=added)
    app.add_url_rule("/late", endpoint="late")

    @app.endpoint("late")
    async def late(req: EasyRequest):
        return {"q": req.params.get("q")}

    blueprint = Blueprint("bp", __name__, url_prefix="/bp")

    @blueprint.route("/view")
    async def bp_view(request: EasyRequest):
        return {"q": request.params.get("q")}

    app.register_blueprint(blueprint)
    server = serve(app)
    for path in ("/one", "/two", "/added", "/late", "/bp/view"):
        assert httpx.get(server.url + path, params={"q": path}).json() == {"q": path}, path


def test_an_app_without_easyrequest_views_is_left_as_quart_made_it(serve):
    """The plugin is loaded, but no view asks for EasyRequest: nothing of the app is rewired."""
    app = WebServer(__name__)
    assert "request" in {plugin.name for plugin in app.plugins}
    assert type(app.view_functions) is dict
    assert "add_url_rule" not in vars(app)  # the class's method, not a replacement

    async def plain(request=None):  # a parameter named request, not annotated EasyRequest
        return {"request": request}

    app.add_url_rule("/plain", view_func=plain)
    before = dict(app.view_functions)
    server = serve(app)
    assert httpx.get(server.url + "/plain").json() == {"request": None}
    assert type(app.view_functions) is dict and "add_url_rule" not in vars(app)
    assert app.view_functions == before and app.view_functions["plain"] is plain


def test_only_the_easyrequest_views_of_an_app_are_wrapped(serve):
    app = WebServer(__name__)

    @app.route("/plain")
    async def plain():
        return {"q": EasyRequest.params.get("q")}  # class access needs no injection

    @app.route("/injected")
    async def injected(request: EasyRequest):
        return {"q": request.params.get("q")}

    server = serve(app)
    assert app.view_functions["plain"] is plain
    assert app.view_functions["injected"] is not injected
    assert app.view_functions["injected"].__wrapped__ is injected
    for path in ("/plain", "/injected"):
        assert httpx.get(server.url + path, params={"q": path}).json() == {"q": path}


async def test_injection_works_through_quarts_test_client():
    app = WebServer(__name__)

    @app.route("/")
    async def view(request: EasyRequest):
        return {"q": request.params.get("q")}

    response = await app.test_client().get("/?q=client")
    assert await response.get_json() == {"q": "client"}
