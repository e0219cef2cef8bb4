"""Malformed request bodies are the client's error: 400 with a reason, never a 500 or a traceback.

Quart's own ``await request.get_json()``/``request.json`` on a ``WebServer`` and the aeros-request
plugin's ``await EasyRequest.json``/``form``/``files``, against real servers on every installed
backend, for the bodies of issue 12 and for Hypothesis-generated bodies, content types and
query strings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import request

from aeros import EasyRequest, WebServer
from aeros_core.request import JSONBodyInvalid, load_json_body
from aeros_core.testing import installed_backends

BACKENDS = installed_backends()
NESTED_1000 = b"[" * 1000 + b"]" * 1000  # the issue saw 500s from 976 levels; from 1000 the parser always gives up

#: (body, Content-Type) of issue 12 that answered 500, and what each means now
MALFORMED = {
    "invalid-utf8": (b'{"a": "\xff\xfe"}', "application/json"),
    "latin-1": ('{"name": "café"}'.encode("latin-1"), "application/json; charset=latin-1"),
    "nested-1000": (NESTED_1000, "application/json"),
    "nested-5000": (b"[" * 5000 + b"]" * 5000, "application/json"),
    "surrogate-in-utf8": (b'["\xed\xa0\x80"]', "application/json"),
    "huge-integer": (b"1" * 5000, "application/json"),
    "truncated-utf16": ('{"a": 1}'.encode("utf-16")[:-1], "application/json"),
}


def make_app() -> WebServer:
    app = WebServer(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20

    @app.route("/quart/json", methods=["POST"])
    async def quart_json() -> Any:
        return {"body": await request.json}

    @app.route("/quart/get_json", methods=["POST"])
    async def quart_get_json() -> Any:
        return {"body": await request.get_json(force=True)}

    @app.route("/quart/silent", methods=["POST"])
    async def quart_silent() -> Any:
        return {"body": await request.get_json(force=True, silent=True)}

    @app.route("/easy/json", methods=["POST"])
    async def easy_json(req: EasyRequest) -> Any:
        return {"body": await req.json}

    @app.route("/easy/form", methods=["GET", "POST", "PUT"])
    async def easy_form(req: EasyRequest) -> Any:
        form = await req.form
        files = await req.files
        return {"form": form.to_dict(flat=False), "files": sorted(files), "params": req.params.to_dict(flat=False)}

    return app


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[dict[str, str], Records]]:
    """One app served by every installed backend; every log record of the process is kept."""
    records = Records()
    app = make_app()
    app.logger.addHandler(records)
    logging.getLogger().addHandler(records)
    logging.getLogger("aeros").addHandler(records)
    running = [app.run_in_thread(port=0, server=backend, access_log_to_std=False) for backend in BACKENDS]
    try:
        yield {backend: server.url for backend, server in zip(BACKENDS, running)}, records
    finally:
        for server in running:
            server.stop(timeout=15)
        for logger in (app.logger, logging.getLogger(), logging.getLogger("aeros")):
            logger.removeHandler(records)


# --- the rule itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        ('{"a": "é"}'.encode(), {"a": "é"}),
        (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a UTF-8 byte-order mark is ignored (RFC 8259 8.1)
        ('{"a": "é"}'.encode("utf-16"), {"a": "é"}),  # UTF-16 with its BOM, as Flask reads it
        ('{"a": "é"}'.encode("utf-16-le"), {"a": "é"}),  # and without, by its zero bytes
        ('["é"]'.encode("utf-32"), ["é"]),
    ],
)
def test_the_encodings_read(body: bytes, expected: Any) -> None:
    assert load_json_body(body, json.loads) == expected


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_each_malformed_body_is_refused_with_a_reason(name: str) -> None:
    body, content_type = MALFORMED[name]
    charset = "latin-1" if "latin-1" in content_type else None
    with pytest.raises(JSONBodyInvalid) as refused:
        load_json_body(body, json.loads, charset)
    message = str(refused.value)
    assert message.startswith("The request body is ") and message.endswith(".")
    if charset:
        assert "charset=latin-1 is ignored" in message


# --- over HTTP, every backend ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_bodies_are_a_400_everywhere(servers, backend: str, name: str) -> None:
    urls, records = servers
    body, content_type = MALFORMED[name]
    before = len(records.records)
    # One connection per request: the subject is the bodies; a kept-alive connection that the server
    # closes when idle (keep_alive_timeout) while the next request is sent is a race of HTTP/1.1 itself.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=urls[backend], timeout=30, limits=fresh) as client:
        for path in ("/quart/json", "/quart/get_json", "/easy/json"):
            answer = client.post(path, content=body, headers={"Content-Type": content_type})
            assert answer.status_code == 400, (path, answer.status_code, answer.text[:300])
        easy = client.post("/easy/json", content=body, headers={"Content-Type": content_type})
        assert "The request body is " in easy.text, easy.text[:300]
        silent = client.post("/quart/silent", content=body, headers={"Content-Type": content_type})
        assert (silent.status_code, silent.json()) == (200, {"body": None})
    assert not _since(records, before).tracebacks()


@pytest.mark.parametrize("backend", BACKENDS)
def test_utf16_and_a_byte_order_mark_are_read(servers, backend: str) -> None:
    urls, _ = servers
    # One connection per request: the subject is the bodies; a kept-alive connection that the server
    # closes when idle (keep_alive_timeout) while the next request is sent is a race of HTTP/1.1 itself.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=urls[backend], timeout=30, limits=fresh) as client:
        for body in ('{"a": "é"}'.encode("utf-16"), b'\xef\xbb\xbf{"a": "\xc3\xa9"}'):
            for path in ("/quart/json", "/easy/json"):
                answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
                assert answer.json() == {"body": {"a": "é"}}, (path, body)


MALFORMED_FORMS = {
    "latin-1-urlencoded": ("name=caf\xe9".encode("latin-1"), "application/x-www-form-urlencoded", "not valid UTF-8"),
    "no-boundary": (b"--x\r\n\r\n", "multipart/form-data", "malformed: Missing boundary"),
    "part-without-disposition": (
        b"--xyz\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--xyz--\r\n",
        "multipart/form-data; boundary=xyz",
        "Missing Content-Disposition header",
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(MALFORMED_FORMS))
def test_malformed_forms_are_a_400_with_a_reason(servers, backend: str, name: str) -> None:
    urls, records = servers
    body, content_type, reason = MALFORMED_FORMS[name]
    before = len(records.records)
    answer = httpx.post(urls[backend] + "/easy/form", content=body, headers={"Content-Type": content_type}, timeout=30)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert reason in answer.text, answer.text[:300]
    assert not _since(records, before).tracebacks()


@pytest.mark.parametrize("backend", BACKENDS)
def test_well_formed_forms_still_read(servers, backend: str) -> None:
    urls, _ = servers
    answer = httpx.post(
        urls[backend] + "/easy/form?x=1",
        data={"name": "café", "tag": ["a", "b"]},
        files={"upload": ("f.txt", b"data", "text/plain")},
        timeout=30,
    )
    assert answer.json() == {"form": {"name": ["café"], "tag": ["a", "b"]}, "files": ["upload"], "params": {"x": ["1"]}}
    plain = httpx.post(urls[backend] + "/easy/form", data={"name": "café"}, timeout=30)
    assert plain.json()["form"] == {"name": ["café"]}
    not_a_form = httpx.post(urls[backend] + "/easy/form", json={"a": 1}, timeout=30)
    assert not_a_form.json()["form"] == {}


def test_quart_shows_the_reason_in_debug_mode_only() -> None:
    import asyncio

    async def post(debug: bool) -> tuple[int, str]:
        app = make_app()
        app.debug = debug
        answer = await app.test_client().post(
            "/quart/json", data=NESTED_1000, headers={"Content-Type": "application/json"}
        )
        return answer.status_code, (await answer.get_data(as_text=True))

    status, text = asyncio.run(post(True))
    assert status == 400 and "nested too deeply" in text
    status, text = asyncio.run(post(False))
    assert status == 400 and "nested too deeply" not in text


def test_a_users_on_json_loading_failed_is_honoured() -> None:
    import asyncio

    from aeros_core.request import Request

    class Lenient(Request):
        def on_json_loading_failed(self, error: Exception) -> Any:
            return {"refused": type(error).__name__}

    async def post() -> Any:
        app = make_app()
        app.request_class = Lenient
        answer = await app.test_client().post("/quart/json", data=b"\xff", headers={"Content-Type": "application/json"})
        return await answer.get_json()

    assert asyncio.run(post()) == {"body": {"refused": "JSONBodyInvalid"}}


def _since(records: Records, index: int) -> Records:
    view = Records()
    view.records = records.records[index:]
    return view


# --- fuzzing: bodies, content types, query strings ------------------------------------------

CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/json; charset=utf-16",
            "application/vnd.api+json",
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "multipart/form-data",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data; boundary=",
            "text/plain",
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"])
BODIES = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda value, encoding: json.dumps(value, ensure_ascii=False).encode(encoding, "replace"),
        JSON_VALUES,
        ENCODINGS,
    ),
    st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(0, 3000)),
    st.builds(
        lambda boundary, part: b"--" + boundary + b"\r\n" + part + b"\r\n--" + boundary + b"--\r\n",
        st.sampled_from([b"xyz", b""]),
        st.binary(max_size=100),
    ),
)
QUERIES = st.binary(max_size=60).map(
    lambda raw: "".join(f"%{byte:02X}" if byte < 0x21 or byte > 0x7E or byte in b"#%" else chr(byte) for byte in raw)
)
PATHS = st.sampled_from(["/quart/json", "/quart/get_json", "/quart/silent", "/easy/json", "/easy/form"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fuzzed_requests_never_get_a_5xx_nor_log_a_traceback(servers, backend: str) -> None:
    urls, records = servers
    before = len(records.records)
    seen: list[int] = []
    # One connection per request: the subject is the bodies; a kept-alive connection that the server
    # closes when idle (keep_alive_timeout) while the next request is sent is a race of HTTP/1.1 itself.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=urls[backend], timeout=30, limits=fresh) as client:

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(path=PATHS, body=BODIES, content_type=CONTENT_TYPES, query=QUERIES)
        def one(path: str, body: bytes, content_type: str, query: str) -> None:
            url = f"{path}?{query}" if query else path
            answer = client.post(url, content=body, headers={"Content-Type": content_type})
            seen.append(answer.status_code)
            assert answer.status_code < 500, (path, body[:80], content_type, query, answer.text[:300])
            assert answer.status_code in (200, 400, 413), (path, answer.status_code)

        one()
    assert 200 in seen and 400 in seen, sorted(set(seen))
    assert not _since(records, before).tracebacks()


async def test_get_json_keeps_its_result_in_quarts_cache() -> None:
    """aeros's ``Request.get_json`` keeps its result in Quart's ``_cached_json`` (docs/internals.md):
    read twice, parsed once, as with Quart's own ``get_json``."""
    app = WebServer(__name__)
    seen: list[tuple[bool, bool]] = []

    @app.route("/json", methods=["POST"])
    async def view() -> str:
        first = await request.get_json()
        second = await request.get_json()
        seen.append((first is second, request._cached_json[False] is first))
        return "ok"

    response = await app.test_client().post("/json", json={"a": [1]})
    assert response.status_code == 200
    assert seen == [(True, True)]
