"""The fast_json built-in: orjson-built JSON responses, byte-identical to Quart's, over real HTTP.

Each test serves the same app twice, with the plugin on and with ``fast_json=False``, and
compares what a client receives.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import subprocess
import sys
import uuid
from collections import OrderedDict
from typing import Any

import httpx
import pytest
from markupsafe import Markup
from quart import jsonify
from quart.json.provider import DefaultJSONProvider

from aeros import WebServer
from aeros_core.builtins.fast_json import FastJSONProvider, load_orjson

pytestmark = pytest.mark.skipif(load_orjson() is None, reason="orjson>=3.11.7 is not installed (aeros[speed])")


@dataclasses.dataclass
class Point:
    z: int
    a: str
    when: datetime.date


class Colour(enum.IntEnum):
    RED = 1


class Tag(str):
    pass


def large_document(items: int = 300) -> dict[str, Any]:
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet".split()
    return {
        "kind": "catalog",
        "items": [
            {
                "sku": f"SKU-{i:05d}",
                "price": round(3.5 + i / 7, 2),
                "id": i,
                "in_stock": i % 3 != 0,
                "name": f"{words[i % 10]} {words[i * 7 % 10]}",
                "tags": words[: i % 4 + 1],
            }
            for i in range(items)
        ],
        "version": 3,
    }


#: documents orjson serialises itself, byte-identical to the stdlib's
FAST_DOCUMENTS: dict[str, Any] = {
    "nested": {"z": {"b": 1, "a": [1, {"d": 2, "c": None}]}, "a": "x", "m": {"y": True, "x": False}},
    "large": large_document(),
    "dates": {
        "when": datetime.datetime(2024, 2, 29, 13, 5, 9),
        "day": datetime.date(1999, 12, 31),
        "aware": datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone.utc),
    },
    "dataclass": {
        "point": Point(2, "b", datetime.date(2020, 1, 2)),
        "points": [Point(1, "a", datetime.date(2021, 3, 4))],
    },
    "decimal_uuid": {
        "price": decimal.Decimal("10.50"),
        "tiny": decimal.Decimal("1E-12"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    },
    "markup": {"html": Markup("<b>bold</b>")},
    "escapes": {"text": 'quote" backslash\\ newline\n tab\t nul\x00 bell\x07 slash/ <script>'},
    "numbers": {
        "ints": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1],
        "floats": [0.1, 2.5, -0.0, 1e16, 1.5e300, 1e-4, 123.456],
    },
    "subclasses": {
        "ordered": OrderedDict([("b", 1), ("a", 2)]),
        "enum": Colour.RED,
        "tag": Tag("t"),
        "tuple": (1, "two"),
    },
    "list_root": [{"b": 1, "a": 2}, "x", 3],
}

#: documents that take the stdlib path (orjson would write something else, or refuses them)
FALLBACK_DOCUMENTS: dict[str, Any] = {
    "unicode": {"name": "café ☃ 😀", "ключ": "значение"},
    "delete_char": {"text": "before\x7fafter"},
    "big_ints": {"big": 2**70, "negative": -(2**65), "nested": [1, {"x": 10**30}]},
    "int_keys": {10: "ten", 2: "two", 33: "thirty-three"},
    "surrogate": {"text": "\ud800"},
}


def make_app(**options: Any) -> WebServer:
    app = WebServer(__name__, **options)
    documents = {**FAST_DOCUMENTS, **FALLBACK_DOCUMENTS}

    @app.route("/doc/<name>")
    async def document(name: str) -> Any:
        return documents[name]

    @app.route("/jsonify/<form>")
    async def jsonify_form(form: str) -> Any:
        if form == "dict":
            return jsonify({"b": 1, "a": [2, 1]})
        if form == "list":
            return jsonify([3, {"y": 1, "x": 2}])
        if form == "args":
            return jsonify(1, "two", {"d": 4, "c": 3})
        if form == "kwargs":
            return jsonify(zeta=1, alpha=datetime.date(2020, 5, 17))
        if form == "scalar":
            return jsonify("text")
        return jsonify()

    @app.route("/dumps")
    async def dumps() -> str:
        nested = FAST_DOCUMENTS["nested"]
        return "|".join(
            [
                app.json.dumps(nested),
                app.json.dumps(nested, separators=(",", ":")),
                app.json.dumps(nested, separators=(",", ":"), sort_keys=False),
                app.json.dumps(nested, indent=1),
            ]
        )

    @app.route("/unserialisable")
    async def unserialisable() -> Any:
        return {"ok": 1, "thing": object()}

    @app.route("/tiny")
    async def tiny() -> Any:
        return {"small": 1e-7, "smaller": -1.5e-5, "fine": 1e-4, "tinier": 1e-10}

    @app.route("/nan")
    async def nan() -> Any:
        return {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "one": 1.0}

    return app


@pytest.fixture
def urls(serve: Any) -> tuple[str, str]:
    """(the app with fast_json, the same app with Quart's provider), both served."""
    fast = make_app()
    stdlib = make_app(fast_json=False)
    assert isinstance(fast.json, FastJSONProvider)
    assert type(stdlib.json) is DefaultJSONProvider
    return serve(fast).url, serve(stdlib).url


def fetch(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def assert_same(fast_url: str, stdlib_url: str, path: str) -> httpx.Response:
    fast, stdlib = fetch(fast_url + path), fetch(stdlib_url + path)
    assert fast.status_code == stdlib.status_code, path
    assert fast.content == stdlib.content, path
    assert fast.headers["content-type"] == stdlib.headers["content-type"], path
    assert fast.headers["content-length"] == stdlib.headers["content-length"], path
    return fast


def test_documents_are_byte_identical_to_quarts(urls: tuple[str, str]) -> None:
    for name in [*FAST_DOCUMENTS, *FALLBACK_DOCUMENTS]:
        response = assert_same(*urls, f"/doc/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "application/json"
        assert response.content.endswith(b"}\n") or response.content.endswith(b"]\n")
    assert b'"when":"Thu, 29 Feb 2024 13:05:09 GMT"' in fetch(urls[0] + "/doc/dates").content


def test_orjson_serialises_the_fast_documents_and_declines_the_others() -> None:
    provider = make_app().json
    assert isinstance(provider, FastJSONProvider)
    for name, document in FAST_DOCUMENTS.items():
        assert provider.encode(document, True, True, provider.default) is not None, name
    for name, document in FALLBACK_DOCUMENTS.items():
        assert provider.encode(document, True, True, provider.default) is None, name
    # without ensure_ascii, orjson's UTF-8 is the stdlib's output too
    unicode = FALLBACK_DOCUMENTS["unicode"]
    encoded = provider.encode(unicode, True, False, provider.default)
    assert encoded is not None
    assert encoded.decode() == DefaultJSONProvider.dumps(provider, unicode, ensure_ascii=False, separators=(",", ":"))


def test_jsonify_forms_are_byte_identical(urls: tuple[str, str]) -> None:
    for form in ("dict", "list", "args", "kwargs", "scalar", "empty"):
        assert_same(*urls, f"/jsonify/{form}")
    assert fetch(urls[0] + "/jsonify/empty").content == b"null\n"
    assert fetch(urls[0] + "/jsonify/args").content == b'[1,"two",{"c":3,"d":4}]\n'


def test_dumps_keeps_the_stdlibs_separators_and_keywords(urls: tuple[str, str]) -> None:
    response = assert_same(*urls, "/dumps")
    default, compact, unsorted, indented = response.text.split("|")
    assert default.startswith('{"a": "x", ')
    assert compact.startswith('{"a":"x",')
    assert unsorted.startswith('{"z":{"b":1,')
    assert indented.startswith('{\n "a": "x",')


def test_debug_and_non_compact_responses_are_indented_as_quart_does(serve: Any) -> None:
    fast, stdlib = make_app(), make_app(fast_json=False)
    fast.debug = stdlib.debug = True
    urls = (serve(fast).url, serve(stdlib).url)
    response = assert_same(*urls, "/doc/nested")
    assert response.content.startswith(b'{\n  "a": "x",\n')

    fast, stdlib = make_app(), make_app(fast_json=False)
    fast.json.compact = stdlib.json.compact = False
    assert_same(serve(fast).url, serve(stdlib).url, "/jsonify/list")


def test_provider_settings_are_honoured(serve: Any) -> None:
    fast, stdlib = make_app(), make_app(fast_json=False)
    for app in (fast, stdlib):
        app.json.sort_keys = False
        app.json.ensure_ascii = False
    urls = (serve(fast).url, serve(stdlib).url)
    assert assert_same(*urls, "/doc/nested").content.startswith(b'{"z":{"b":1,')
    assert "café" in assert_same(*urls, "/doc/unicode").text


def test_an_unserialisable_object_is_still_quarts_500(urls: tuple[str, str]) -> None:
    response = assert_same(*urls, "/unserialisable")
    assert response.status_code == 500
    provider = make_app().json
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        provider.dumps({"thing": object()}, separators=(",", ":"))


def test_nan_and_infinity_are_written_as_null(urls: tuple[str, str]) -> None:
    fast, stdlib = fetch(urls[0] + "/nan"), fetch(urls[1] + "/nan")
    assert fast.content == b'{"inf":null,"nan":null,"ninf":null,"one":1.0}\n'
    assert stdlib.content == b'{"inf":Infinity,"nan":NaN,"ninf":-Infinity,"one":1.0}\n'
    assert fast.json() == {"inf": None, "nan": None, "ninf": None, "one": 1.0}


def test_tiny_floats_and_plain_enums_are_written_the_orjson_way(urls: tuple[str, str]) -> None:
    fast, stdlib = fetch(urls[0] + "/tiny"), fetch(urls[1] + "/tiny")
    assert stdlib.content == b'{"fine":0.0001,"small":1e-07,"smaller":-1.5e-05,"tinier":1e-10}\n'
    assert fast.content == b'{"fine":0.0001,"small":1e-7,"smaller":-0.000015,"tinier":1e-10}\n'
    assert fast.json() == stdlib.json()

    class Plain(enum.Enum):
        ONE = 1

    provider = make_app().json
    assert provider.dumps({"e": Plain.ONE}, separators=(",", ":")) == '{"e":1}'
    with pytest.raises(TypeError):
        DefaultJSONProvider.dumps(provider, {"e": Plain.ONE}, separators=(",", ":"))


@pytest.mark.parametrize(
    "options", [{"fast_json": False}, {"disable_plugins": ["fast_json"]}], ids=["fast_json=False", "disable_plugins"]
)
def test_the_plugin_can_be_turned_off(serve: Any, options: dict[str, Any]) -> None:
    app = make_app(**options)
    assert type(app.json) is DefaultJSONProvider
    assert ("fast_json" in {info.name for info in app.plugins}) is ("disable_plugins" not in options)
    assert fetch(serve(app).url + "/nan").content.startswith(b'{"inf":Infinity,"nan":NaN')


def test_a_provider_the_application_chose_is_left_alone() -> None:
    class MyProvider(DefaultJSONProvider):
        sort_keys = False

    class MyServer(WebServer):
        json_provider_class = MyProvider

    assert type(MyServer(__name__).json) is MyProvider


def test_without_orjson_the_stdlib_provider_stays() -> None:
    script = (
        "import sys; sys.modules['orjson'] = None\n"
        "from aeros import WebServer\n"
        "app = WebServer(__name__)\n"
        "print(type(app.json).__name__, app.options['fast_json'], 'fast_json' in {p.name for p in app.plugins})\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DefaultJSONProvider", "True", "True"]


@pytest.mark.parametrize(
    "value, mimetype",
    [
        ({"message": "Hello, World!"}, None),
        ([1, 2, {"b": 1, "a": 2}], None),
        ({"text": "caf\u00e9"}, None),  # ensure_ascii: the stdlib writes it
        ({"a": 1}, "application/vnd.example+json"),
        ({"a": 1}, "text/json"),  # a text type: a charset is added, as werkzeug adds it
    ],
)
async def test_the_response_object_is_quarts(value: Any, mimetype: str | None) -> None:
    """A dict or list returned by a view gives the response object Quart's provider would build:
    the same attributes, set in the same order, the same headers and body."""
    fast, plain = WebServer(__name__), WebServer(__name__, fast_json=False)
    made = []
    for app in (fast, plain):
        if mimetype is not None:
            app.json.mimetype = mimetype
        async with app.app_context():
            made.append(await app.make_response(value))
    ours, quarts = made
    assert type(ours) is type(quarts)
    assert list(vars(ours)) == list(vars(quarts))
    assert list(ours.headers.items()) == list(quarts.headers.items())
    assert (ours._status, ours._status_code, ours.timeout) == (quarts._status, quarts._status_code, quarts.timeout)
    assert await ours.get_data() == await quarts.get_data()
