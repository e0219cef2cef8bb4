"""access_log_format (None, "json", %(atom)s templates), request ids, and aeros_access_log_fields."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Response

import aeros
from aeros import AsgiWrapper, Stage, WebServer, hookimpl
from aeros_core.builtins.access_log import ATOMS
from aeros_core.builtins.request_id import id_generator, valid_request_id
from aeros_core.testing import installed_backends


def make_app(**keywords: Any) -> WebServer:
    app = WebServer(__name__, **keywords)

    @app.route("/hello")
    async def hello() -> Response:
        return Response("hello", headers={"X-Out": "o1"})

    @app.route("/rid")
    async def rid() -> dict[str, Any]:
        return {"rid": aeros.request_id()}

    return app


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def served_log(serve, app: WebServer, tmp_path: Path, requests: list[tuple[str, dict]], **keywords: Any) -> list[str]:
    log = tmp_path / "access.log"
    running = serve(app, access_log_file=str(log), **keywords)
    for target, headers in requests:
        httpx.get(running.url + target, headers=headers, timeout=10)
    running.stop(timeout=10)  # the log file is flushed and closed at the lifespan shutdown
    return lines_of(log)


def test_default_format_is_common_plus_duration_then_the_contributed_fields(serve, tmp_path):
    (line,) = served_log(serve, make_app(), tmp_path, [("/hello?x=1", {})])
    common = r'127\.0\.0\.1 - - \[[^]]+\] "GET /hello\?x=1 HTTP/1\.1" 200 5 \d+\.\d\dms'
    assert re.fullmatch(common + r" request_id=[0-9a-f]{32}", line), line
    (tmp_path / "off").mkdir()
    (line,) = served_log(serve, make_app(), tmp_path / "off", [("/hello?x=1", {})], request_id_header=None)
    assert re.fullmatch(common, line), line


@pytest.mark.parametrize("server", installed_backends())
def test_json_lines_have_every_field_on_every_backend(serve, tmp_path, server):
    (line,) = served_log(
        serve,
        make_app(),
        tmp_path,
        [("/hello?q=%22x%22", {"User-Agent": 'quote"agent', "Referer": "https://ref.example/"})],
        access_log_format="json",
        server=server,
    )
    record = json.loads(line)
    assert list(record) == [
        "time",
        "client",
        "method",
        "path",
        "query",
        "status",
        "bytes",
        "duration_ms",
        "request_id",
        "user_agent",
        "referer",
    ]
    assert record["client"] == "127.0.0.1" and record["method"] == "GET" and record["path"] == "/hello"
    assert record["query"] == "q=%22x%22" and record["status"] == 200 and record["bytes"] == 5
    assert record["user_agent"] == 'quote"agent' and record["referer"] == "https://ref.example/"
    assert re.fullmatch(r"[0-9a-f]{32}", record["request_id"]) and record["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])


def test_template_atoms(serve, tmp_path):
    template = " | ".join(f"{atom}=%({atom})s" for atom in ATOMS) + " | in=%({user-agent}i)s | out=%({x-out}o)s"
    (line,) = served_log(
        serve, make_app(), tmp_path, [("/hello?a=b", {"User-Agent": "ua"})], access_log_format=template
    )
    fields = dict(part.split("=", 1) for part in line.split(" | "))
    assert fields["h"] == "127.0.0.1" and fields["l"] == "-" and fields["u"] == "-"
    assert fields["r"] == "GET /hello?a=b HTTP/1.1" and fields["m"] == "GET" and fields["U"] == "/hello"
    assert fields["q"] == "?a=b" and fields["H"] == "HTTP/1.1" and fields["s"] == "200"
    assert fields["b"] == "5" and fields["B"] == "5" and fields["f"] == "-" and fields["a"] == "ua"
    assert fields["D"].isdigit() and fields["M"].isdigit() and fields["T"].isdigit()
    assert re.fullmatch(r"\d+\.\d{6}", fields["L"]) and fields["p"].isdigit()
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", fields["t"])
    assert re.fullmatch(r"[0-9a-f]{32}", fields["request_id"])
    assert fields["in"] == "ua" and fields["out"] == "o1"


def test_unknown_atom_is_an_error_at_start():
    with pytest.raises(ValueError, match=r"%\(nope\)s"):
        make_app().run_in_thread(
            port=0, access_log_format="%(h)s %(nope)s", access_log_to_std=False, access_log_file="/dev/null"
        )


class TenantPlugin:
    @hookimpl
    def aeros_asgi_wrapper(self, app, settings):
        def wrap(inner):
            async def with_tenant(scope, receive, send):
                if scope["type"] == "http":
                    scope.setdefault("extensions", {})["tenant"] = "shop"
                await inner(scope, receive, send)

            return with_tenant

        return AsgiWrapper(Stage.HEADERS, wrap)

    @hookimpl
    def aeros_access_log_fields(self, app, settings):
        return {"tenant": lambda scope: scope.get("extensions", {}).get("tenant"), "broken": lambda scope: 1 / 0}


def test_plugins_contribute_fields_through_aeros_access_log_fields(serve, tmp_path):
    app = WebServer(__name__, plugins=[TenantPlugin])

    @app.route("/")
    async def home() -> str:
        return "home"

    (json_line,) = served_log(serve, app, tmp_path, [("/", {})], access_log_format="json")
    record = json.loads(json_line)
    assert record["tenant"] == "shop" and record["broken"] is None
    (tmp_path / "access.log").unlink()
    (line,) = served_log(serve, app, tmp_path, [("/", {})], access_log_format="%(s)s %(tenant)s")
    assert line == "200 shop"


# --- request ids -----------------------------------------------------------------------------


@pytest.mark.parametrize("server", installed_backends())
def test_request_id_generated_sent_logged_and_visible_in_views(serve, tmp_path, server):
    log = tmp_path / "access.log"
    running = serve(make_app(), access_log_file=str(log), access_log_format="%(request_id)s", server=server)
    first = httpx.get(running.url + "/rid", timeout=10)
    second = httpx.get(running.url + "/rid", headers={"X-Request-ID": "client-chose"}, timeout=10)
    running.stop(timeout=10)
    ids = [first.json()["rid"], second.json()["rid"]]
    assert ids[1] != "client-chose", "no trusted_proxies: a client's id is never taken"
    assert [first.headers["x-request-id"], second.headers["x-request-id"]] == ids
    assert lines_of(log) == ids and len(set(ids)) == 2


def test_request_id_from_a_trusted_proxy_is_validated(serve):
    running = serve(make_app(), trusted_proxies="127.0.0.1")
    assert httpx.get(running.url + "/rid", headers={"X-Request-ID": "lb-7f3a"}, timeout=10).json()["rid"] == "lb-7f3a"
    for hostile in ["x" * 129, "a b", "<script>", "é".encode(), '"quoted"', "a,b"]:
        response = httpx.get(running.url + "/rid", headers={"X-Request-ID": hostile}, timeout=10)
        assert response.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{32}", response.json()["rid"]), hostile
        assert response.headers["x-request-id"] == response.json()["rid"]


def test_custom_header_name_and_off(serve):
    running = serve(make_app(), request_id_header="X-Trace-Ref")
    response = httpx.get(running.url + "/rid", timeout=10)
    assert response.headers["x-trace-ref"] == response.json()["rid"] and "x-request-id" not in response.headers
    off = serve(make_app(), request_id_header=None)
    response = httpx.get(off.url + "/rid", timeout=10)
    assert response.json()["rid"] is None and "x-request-id" not in response.headers
    assert aeros.request_id() is None  # outside a request


def test_request_ids_are_unique_and_valid():
    new_id = id_generator()
    ids = {new_id() for _ in range(10000)}
    assert len(ids) == 10000 and all(valid_request_id(value.encode()) for value in ids)
    assert id_generator()() != new_id(), "each process (generator) draws its own prefix"
    assert not valid_request_id(b"") and not valid_request_id(b"\x00") and not valid_request_id(b"a" * 129)
