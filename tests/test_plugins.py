"""The plugin system: discovery, disabling, load errors, every hook, stage order, isolation."""

from __future__ import annotations

import httpx
import pytest

from aeros import (
    AfterResponse,
    AsgiWrapper,
    BeforeRequest,
    Option,
    PluginLoadError,
    Stage,
    WebServer,
    hookimpl,
)

RECORDING_PLUGIN = """
from aeros import AfterResponse, AsgiWrapper, BeforeRequest, Option, Stage, hookimpl

class Recorder:
    def __init__(self):
        self.calls = []
        self.greeting = None

    @hookimpl
    def aeros_options(self):
        return [Option("greeting", "hello", "what /greet says")]

    @hookimpl
    def aeros_app_init(self, app, options):
        self.calls.append("app_init")
        self.greeting = options["greeting"]

        @app.route("/greet")
        async def greet():
            return self.greeting

    @hookimpl
    def aeros_server_config(self, settings):
        self.calls.append("server_config")

    @hookimpl
    def aeros_asgi_wrapper(self, app, settings):
        def wrap(inner):
            async def tagged(scope, receive, send):
                async def tagging_send(message):
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message["headers"], (b"x-recorder", b"edge")]
                    await send(message)
                await inner(scope, receive, tagging_send)
            return tagged
        return AsgiWrapper(Stage.HEADERS, wrap)

    @hookimpl
    def aeros_startup(self, app):
        async def opened():
            self.calls.append("startup")
        return opened()

    @hookimpl
    def aeros_shutdown(self, app):
        self.calls.append("shutdown")
"""


def test_installed_plugin_is_discovered_and_every_hook_runs(plugin_dist, serve):
    plugin_dist("aeros-recorder", "aeros_recorder", RECORDING_PLUGIN, {"recorder": "aeros_recorder:Recorder"}, "2.5")
    app = WebServer(__name__, greeting="hi there")
    info = next(p for p in app.plugins if p.name == "recorder")
    assert (info.distribution, info.version, info.builtin) == ("aeros-recorder", "2.5", False)
    recorder = info.plugin
    server = serve(app)
    response = httpx.get(server.url + "/greet")
    assert response.text == "hi there"
    assert response.headers["x-recorder"] == "edge"
    server.stop()
    assert recorder.calls == ["app_init", "server_config", "startup", "shutdown"]


def test_plugin_state_is_per_app(plugin_dist):
    plugin_dist("aeros-recorder", "aeros_recorder", RECORDING_PLUGIN, {"recorder": "aeros_recorder:Recorder"})
    first = WebServer(__name__, greeting="one")
    second = WebServer(__name__)
    one = first.plugin_manager.get_plugin("recorder")
    two = second.plugin_manager.get_plugin("recorder")
    assert one is not two
    assert (one.greeting, two.greeting) == ("one", "hello")


def test_disable_plugins_keyword_and_environment(plugin_dist, monkeypatch):
    plugin_dist("aeros-recorder", "aeros_recorder", RECORDING_PLUGIN, {"recorder": "aeros_recorder:Recorder"})
    assert "recorder" not in {p.name for p in WebServer(__name__, disable_plugins=["recorder"]).plugins}
    assert "recorder" not in {p.name for p in WebServer(__name__, disable_plugins=["aeros-recorder"]).plugins}
    monkeypatch.setenv("AEROS_DISABLE_PLUGINS", "something-else, recorder")
    app = WebServer(__name__)
    assert "recorder" not in {p.name for p in app.plugins}
    assert "/greet" not in {rule.rule for rule in app.url_map.iter_rules()}


def test_a_plugin_that_fails_to_import_names_itself(plugin_dist):
    plugin_dist(
        "aeros-broken", "aeros_broken", "raise RuntimeError('boom at import')", {"broken": "aeros_broken:Plugin"}, "0.3"
    )
    with pytest.raises(PluginLoadError) as caught:
        WebServer(__name__)
    message = str(caught.value)
    assert "'broken'" in message and "aeros_broken:Plugin" in message
    assert "aeros-broken 0.3" in message and "boom at import" in message
    # ...and it can be turned off to get going again
    WebServer(__name__, disable_plugins=["broken"])


def test_a_misspelled_hook_is_a_load_error():
    class Typo:
        @hookimpl
        def aeros_app_inti(self, app):
            pass

    with pytest.raises(PluginLoadError, match="aeros_app_inti"):
        WebServer(__name__, plugins=[Typo])


def test_two_plugins_declaring_one_keyword_is_a_load_error():
    class First:
        name = "first"

        @hookimpl
        def aeros_options(self):
            return [Option("colour")]

    class Second(First):
        name = "second"

    with pytest.raises(PluginLoadError, match="'colour'"):
        WebServer(__name__, plugins=[First, Second])


class Stages:
    """Records the order in which response steps run, whatever order they were registered in."""

    name = "stages"

    def __init__(self, answer_cached: bool = False) -> None:
        self.answer_cached = answer_cached

    @hookimpl
    def aeros_before_request(self, app):
        async def cache_lookup():
            from quart import request

            if self.answer_cached and request.path == "/cached":
                return "from cache"
            return None

        return BeforeRequest(Stage.STORE, cache_lookup)

    @hookimpl
    def aeros_after_response(self, app):
        def step(label):
            async def transform(response):
                order = response.headers.get("X-Order", "")
                response.headers["X-Order"] = f"{order},{label}".lstrip(",")
                return response

            return transform

        # deliberately listed out of order
        return [
            AfterResponse(Stage.ENCODE, step("encode")),
            AfterResponse(Stage.STORE, step("store")),
            AfterResponse(Stage.HEADERS, step("headers")),
        ]


async def test_response_steps_run_in_stage_order_on_views_and_errors():
    app = WebServer(__name__, plugins=[Stages()])

    @app.after_request
    async def users_after(response):
        response.headers["X-Order"] = "user"
        return response

    @app.route("/view")
    async def view():
        return "ok"

    client = app.test_client()
    assert (await client.get("/view")).headers["X-Order"] == "user,store,headers,encode"
    assert (await client.get("/missing")).headers["X-Order"] == "user,store,headers,encode"


async def test_an_early_answer_skips_the_view_and_enters_after_its_stage():
    app = WebServer(__name__, plugins=[Stages(answer_cached=True)])
    ran = []

    @app.route("/cached")
    async def cached():
        ran.append(1)
        return "from view"

    response = await app.test_client().get("/cached")
    assert await response.get_data(as_text=True) == "from cache"
    assert response.headers["X-Order"] == "headers,encode"
    assert ran == []


def test_asgi_wrappers_compose_lowest_stage_innermost(serve):
    order = []

    class Edges:
        name = "edges"

        @hookimpl
        def aeros_asgi_wrapper(self, app, settings):
            def named(label):
                def wrap(inner):
                    async def wrapped(scope, receive, send):
                        if scope["type"] == "http":
                            order.append(label)
                        await inner(scope, receive, send)

                    return wrapped

                return wrap

            return [
                AsgiWrapper(Stage.STORE, named("store")),
                AsgiWrapper(Stage.OBSERVE, named("observe")),
                AsgiWrapper(Stage.HEADERS, named("headers")),
            ]

    app = WebServer(__name__, plugins=[Edges()])

    @app.route("/")
    async def home():
        return "ok"

    server = serve(app)
    assert httpx.get(server.url).status_code == 200
    assert order == ["observe", "headers", "store"]


def test_no_active_plugin_leaves_the_request_path_untouched():
    app = WebServer(__name__, disable_plugins=["cache", "compress", "headers", "request", "uvicorn"])
    assert app.request_pipeline.before == ()
    assert app.request_pipeline.after == ()
