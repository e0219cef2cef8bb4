"""WebServer construction: Quart compatibility, keywords, plugin listing, per-app isolation."""

from __future__ import annotations

import pytest
from quart import Quart, render_template_string

from aeros import UnknownOptionError, WebServer


def test_webserver_is_a_quart_app_with_loopback_defaults():
    app = WebServer(__name__)
    assert isinstance(app, Quart)
    assert (app.host, app.port) == ("127.0.0.1", 8000)


def test_quart_keywords_pass_through(tmp_path):
    app = WebServer(__name__, template_folder=str(tmp_path), static_url_path="/assets")
    assert app.template_folder == str(tmp_path)
    assert app.static_url_path == "/assets"


async def test_quart_idioms_work_through_the_test_client():
    app = WebServer(__name__)
    seen = []

    @app.before_request
    async def before():
        seen.append("before")

    @app.after_request
    async def after(response):
        response.headers["X-After"] = "1"
        return response

    @app.route("/page/<name>")
    async def page(name):
        return await render_template_string("Hi {{ name }}", name=name)

    @app.errorhandler(404)
    async def missing(error):
        return "nothing here", 404

    client = app.test_client()
    response = await client.get("/page/ann")
    assert response.status_code == 200
    assert await response.get_data(as_text=True) == "Hi ann"
    assert response.headers["X-After"] == "1"
    missing_response = await client.get("/nope")
    assert missing_response.status_code == 404
    assert await missing_response.get_data(as_text=True) == "nothing here"
    assert seen == ["before", "before"]


def test_unknown_keyword_names_it_and_the_closest_known_one():
    with pytest.raises(UnknownOptionError) as caught:
        WebServer(__name__, include_server_heade=False)
    message = str(caught.value)
    assert "'include_server_heade'" in message
    assert "did you mean 'include_server_header'" in message


def test_unknown_keyword_of_a_missing_plugin_names_the_extra():
    with pytest.raises(UnknownOptionError) as caught:
        WebServer(__name__, disable_plugins=["cache"], cache=object())
    message = str(caught.value)
    assert "'cache'" in message and "pip install 'aeros[cache]'" in message


def test_a_typo_of_a_plugin_keyword_suggests_it_and_its_extra():
    with pytest.raises(UnknownOptionError) as caught:
        WebServer(__name__, disable_plugins=["headers"], global_header={"X": "1"})
    message = str(caught.value)
    assert "did you mean 'global_headers'" in message
    assert "aeros[headers]" in message


def test_keyword_of_a_missing_plugin_set_to_none_is_accepted():
    WebServer(__name__, disable_plugins=["cache", "compress"], cache=None, compression=None)


def test_plugins_lists_builtins_marked_as_such():
    app = WebServer(__name__)
    by_name = {info.name: info for info in app.plugins}
    for name in ("hypercorn", "access_log", "server_header", "soft_limit", "fast_json"):
        assert by_name[name].builtin is True
        assert by_name[name].distribution == "aeros"
        assert by_name[name].version
    assert by_name["cache"].builtin is False
    assert by_name["cache"].distribution == "aeros-cache"


def test_two_apps_get_their_own_plugin_instances():
    first = WebServer(__name__, include_server_header=False)
    second = WebServer(__name__)
    assert first.plugin_manager is not second.plugin_manager
    first_plugin = first.plugin_manager.get_plugin("server_header")
    second_plugin = second.plugin_manager.get_plugin("server_header")
    assert first_plugin is not second_plugin
    assert (first_plugin.include, second_plugin.include) == (False, True)


def test_logging_level_sets_the_app_logger():
    app = WebServer(__name__, logging_level="WARNING")
    assert app.logger.level == 30
