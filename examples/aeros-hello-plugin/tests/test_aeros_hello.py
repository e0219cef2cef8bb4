"""The template's own tests: run them with ``pytest`` after ``pip install -e .``.

They use the ``serve`` fixture that aeros ships (a pytest plugin, entry point ``pytest11``):
``serve(app)`` starts the app on a free loopback port and stops it after the test.
"""

from __future__ import annotations

import httpx
import pytest
from aeros_hello import PING_PATH, HelloPlugin

from aeros import WebServer


def hello_plugin(app: WebServer) -> HelloPlugin:
    """This app's instance of the plugin (one per WebServer), found through ``app.plugins``."""
    (plugin,) = [info.plugin for info in app.plugins if isinstance(info.plugin, HelloPlugin)]
    return plugin


def test_aeros_options_declares_hello_greeting_with_a_default() -> None:
    assert WebServer(__name__).options["hello_greeting"] is None
    assert WebServer(__name__, hello_greeting="Hi").options["hello_greeting"] == "Hi"


def test_not_configured_it_adds_nothing_to_the_request_path(serve) -> None:
    app = WebServer(__name__)
    assert app.request_pipeline.after == ()  # (assuming no other plugin is configured)
    server = serve(app)
    assert httpx.get(server.url + "/hello-plugin/Ada").status_code == 404
    assert httpx.get(server.url + PING_PATH).status_code == 404
    assert "x-hello" not in httpx.get(server.url + "/hello-plugin/Ada").headers


def test_aeros_app_init_rejects_a_bad_greeting() -> None:
    with pytest.raises(TypeError, match="hello_greeting"):
        WebServer(__name__, hello_greeting=42)


def test_route_and_header_on_a_real_server(serve) -> None:
    app = WebServer(__name__, hello_greeting="Bonjour")

    @app.route("/")
    async def home() -> str:
        return "home"

    server = serve(app)
    greeted = httpx.get(server.url + "/hello-plugin/Ada")
    assert greeted.status_code == 200
    assert greeted.json()["greeting"] == "Bonjour, Ada!"
    # aeros_after_response: the header reaches the user's views and 404 pages too.
    assert greeted.headers["x-hello"] == "Bonjour"
    assert httpx.get(server.url + "/").headers["x-hello"] == "Bonjour"
    missing = httpx.get(server.url + "/nope")
    assert missing.status_code == 404 and missing.headers["x-hello"] == "Bonjour"


def test_aeros_asgi_wrapper_answers_ping_at_the_edge(serve) -> None:
    app = WebServer(__name__, hello_greeting="Hi")
    server = serve(app)
    response = httpx.get(server.url + PING_PATH)
    assert response.status_code == 200
    assert response.text == "pong\n"
    assert "x-hello" not in response.headers  # Quart never saw it, so no response step ran


def test_aeros_startup_and_aeros_shutdown_run_once_per_server(serve) -> None:
    app = WebServer(__name__, hello_greeting="Hi")
    plugin = hello_plugin(app)
    assert plugin.serving == 0
    server = serve(app)
    assert httpx.get(server.url + "/hello-plugin/x").json()["serving"] == 1
    server.stop()
    assert plugin.serving == 0


def test_two_apps_never_share_state(serve) -> None:
    first = WebServer(__name__, hello_greeting="One")
    second = WebServer(__name__, hello_greeting="Two")
    assert hello_plugin(first) is not hello_plugin(second)
    one, two = serve(first), serve(second)
    assert httpx.get(one.url + "/hello-plugin/a").headers["x-hello"] == "One"
    assert httpx.get(two.url + "/hello-plugin/a").headers["x-hello"] == "Two"
