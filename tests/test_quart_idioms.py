"""Quart idioms mean on a WebServer what they mean in Quart (issue 12.6)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from quart import Quart

from aeros import WebServer
from aeros_core.testing import installed_backends

BACKENDS = installed_backends()


# --- the app logger: Quart's unless logging_level is given ----------------------------------


def test_the_app_logger_is_quarts_when_no_level_is_given() -> None:
    logging.getLogger("idioms.preset").setLevel(logging.WARNING)
    preset = WebServer("idioms.preset")
    assert preset.logger.level == logging.WARNING  # the user's level stays

    debugging = WebServer("idioms.debugging")
    debugging.debug = True
    assert debugging.logger.level == logging.DEBUG  # Quart's DEBUG under app.debug
    assert debugging.logger.isEnabledFor(logging.DEBUG)


def test_a_logging_level_given_is_the_app_loggers() -> None:
    logging.getLogger("idioms.given").setLevel(logging.ERROR)
    app = WebServer("idioms.given", logging_level="DEBUG")
    assert app.logger.level == logging.DEBUG


def test_app_logger_debug_output_reaches_a_handler_under_debug(caplog: pytest.LogCaptureFixture) -> None:
    app = WebServer("idioms.output")
    app.debug = True
    with caplog.at_level(logging.NOTSET, logger="idioms.output"):
        app.logger.debug("a debug line")
    assert "a debug line" in caplog.text


# --- positional arguments are Quart's; host and port are keywords ---------------------------


def test_positional_arguments_go_to_quart(tmp_path) -> None:
    (tmp_path / "hello.txt").write_text("static hello")
    app = WebServer(__name__, "/assets", str(tmp_path))
    assert (app.static_url_path, app.static_folder) == ("/assets", str(tmp_path))
    assert (app.host, app.port) == ("127.0.0.1", 8000)

    async def fetch() -> tuple[int, bytes]:
        response = await app.test_client().get("/assets/hello.txt")
        return response.status_code, await response.get_data()

    import asyncio

    assert asyncio.run(fetch()) == (200, b"static hello")


def test_the_original_aeros_positional_host_and_port_are_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"host and port are keywords.*host='0.0.0.0', port=80"):
        WebServer(__name__, "0.0.0.0", 80)
    app = WebServer(__name__, host="0.0.0.0", port=80)
    assert (app.host, app.port) == ("0.0.0.0", 80)


# --- run(debug=True) ------------------------------------------------------------------------


def debug_app() -> WebServer:
    app = WebServer(__name__)

    @app.route("/state")
    async def state() -> Any:
        return {"debug": app.debug}

    @app.route("/boom")
    async def boom() -> Any:
        raise RuntimeError("the view exploded")

    return app


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_in_thread_debug_turns_debug_on(serve, backend: str) -> None:
    app = debug_app()
    assert not app.debug
    server = serve(app, server=backend, debug=True)
    assert server.settings.reload is False
    assert httpx.get(server.url + "/state", timeout=10).json() == {"debug": True}
    boom = httpx.get(server.url + "/boom", timeout=10)
    assert boom.status_code == 500 and "the view exploded" in boom.text  # Quart's debug page


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_debug_turns_debug_and_the_reloader_on(script_server, backend: str) -> None:
    server = script_server(
        f"""
        import os
        from aeros import WebServer

        app = WebServer(__name__)

        @app.route("/pid")
        async def pid():
            return {{"debug": app.debug, "reload_child": os.environ.get("AEROS_RELOAD_CHILD")}}

        if __name__ == "__main__":
            app.run(port=0, debug=True, server={backend!r})
        """
    )
    url = server.wait_ready()
    assert httpx.get(url + "/pid", timeout=10).json() == {"debug": True, "reload_child": "1"}
    server.stop()
    assert "TypeError" not in server.output


def test_run_debug_keeps_an_explicit_reload_false() -> None:
    from aeros_core.runner import prepare

    app = debug_app()
    settings = prepare(app, {"debug": True, "reload": False})
    assert app.debug and settings.reload is False
    assert prepare(debug_app(), {"debug": True}).reload is True


# --- the facade: a plugin installed but broken shows its import error -----------------------

BROKEN_SOURCE = """
import aeros_missing_dependency_xyz  # what the broken plugin needs and does not find

__all__ = ["Thing"]
Thing = object()
"""


def test_a_broken_third_party_plugin_shows_its_import_error(plugin_dist) -> None:
    import aeros

    plugin_dist("aeros-broken", "aeros_broken", BROKEN_SOURCE, {"broken": "aeros_broken:Plugin"})
    with pytest.raises(ImportError, match=r"aeros_broken: ModuleNotFoundError: .*aeros_missing_dependency_xyz"):
        from aeros import Thing  # noqa: F401
    assert hasattr(aeros, "Thing") is False
    with pytest.raises(AttributeError, match="aeros_missing_dependency_xyz"):
        aeros.Thing


def test_a_broken_known_plugin_shows_its_import_error_not_pip_install(plugin_dist, monkeypatch) -> None:
    import sys

    import aeros

    for module in [m for m in sys.modules if m == "aeros_request" or m.startswith("aeros_request.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.delitem(vars(aeros), "EasyRequest", raising=False)
    plugin_dist(
        "aeros-request",
        "aeros_request",
        'raise ImportError("aeros-request needs libfoo 2")',
        {"request": "aeros_request:RequestPlugin"},
    )
    with pytest.raises(ImportError) as failed:
        from aeros import EasyRequest  # noqa: F401
    message = str(failed.value)
    assert "installed but fails to import: ImportError: aeros-request needs libfoo 2" in message
    assert "pip install" not in message
    assert hasattr(aeros, "EasyRequest") is False


def test_a_plugin_that_is_not_installed_still_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aeros_compress'] = None\n"
        "import aeros\nprint('hasattr:', hasattr(aeros, 'Gzip'))\nfrom aeros import Gzip"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and result.stdout == "hasattr: False\n", result.stderr
    assert "ImportError: Gzip comes with the aeros-compress plugin, which is not installed" in result.stderr
    assert "pip install 'aeros[compress]'" in result.stderr


# --- app.asgi_app = Middleware(app.asgi_app), as in Quart, also in before_serving -----------


class Stamp:
    """An ASGI middleware that adds a header to every HTTP response."""

    def __init__(self, app: Any, value: str) -> None:
        self.app = app
        self.value = value.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stamped(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-stamp", self.value)]}
            await send(message)

        await self.app(scope, receive, stamped if scope["type"] == "http" else send)


def stamped_app(when: str) -> WebServer:
    app = WebServer(__name__)

    @app.route("/hello")
    async def hello() -> str:
        return "hello"

    if when == "constructed":
        app.asgi_app = Stamp(app.asgi_app, "outer")
        app.asgi_app = Stamp(app.asgi_app, "inner")
    else:

        @app.before_serving
        async def wrap() -> None:
            app.asgi_app = Stamp(app.asgi_app, "outer")
            app.asgi_app = Stamp(app.asgi_app, "inner")

    return app


@pytest.mark.parametrize("when", ["constructed", "before_serving"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_replaced_asgi_app_is_served(serve, backend: str, when: str) -> None:
    server = serve(stamped_app(when), server=backend)
    for _ in range(2):
        answer = httpx.get(server.url + "/hello", timeout=10)
        assert (answer.status_code, answer.text) == (200, "hello")
        assert answer.headers.get_list("x-stamp") == ["outer", "inner"]
    assert httpx.get(server.url + "/nowhere", timeout=10).headers.get_list("x-stamp") == ["outer", "inner"]


def test_a_replaced_asgi_app_is_served_by_an_external_server_and_the_test_client() -> None:
    import asyncio

    async def fetch() -> Any:
        app = stamped_app("before_serving")
        async with app.test_app() as test_app:
            response = await test_app.test_client().get("/hello")
            return response.headers.getlist("x-stamp"), await response.get_data(as_text=True)

    assert asyncio.run(fetch()) == (["outer", "inner"], "hello")


def test_the_entry_is_quarts_own_asgi_app_while_nothing_is_replaced() -> None:
    from aeros_core.runner.settings import ServerSettings

    app = WebServer(__name__, disable_plugins=["access_log", "soft_limit", "server_header", "cache", "compress"])
    entry = app.asgi_entry(ServerSettings(access_log_to_std=False, request_id_header=None))
    assert getattr(entry, "__func__", None) is Quart.asgi_app and entry.__self__ is app  # no layer of ours
