"""aeros-otel: real servers, real OpenTelemetry SDKs, spans read back from what the exporters wrote."""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aeros import WebServer
from aeros_core.testing import installed_backends, wait_for

WORKERS_APP = """
    import os
    from pathlib import Path

    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from aeros import WebServer

    SPANS = Path(os.environ["SPANS_DIR"])

    def file_exporter():
        # called in each worker, after the fork: one file per worker process
        stream = open(SPANS / f"spans-{os.getpid()}.jsonl", "a")
        return ConsoleSpanExporter(out=stream, formatter=lambda span: span.to_json(indent=None) + "\\n")

    app = WebServer(__name__, tracing={"exporter": file_exporter, "service_name": "shop"})

    @app.route("/pid")
    async def pid():
        return str(os.getpid())

    @app.route("/items/<int:number>")
    async def item(number):
        return {"number": number, "pid": os.getpid()}

    if __name__ == "__main__":
        app.run(port=0, workers=2, access_log_to_std=False, access_log_file=os.environ["ACCESS_LOG"])
"""


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def read_spans(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """``{pid: [span as JSON]}`` from every worker's file."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in directory.glob("spans-*.jsonl"):
        pid = path.stem.removeprefix("spans-")
        found[pid] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return found


def test_each_worker_exports_one_server_span_per_request_with_the_callers_trace(app_process, tmp_path):
    spans_dir = tmp_path / "spans"
    spans_dir.mkdir()
    access_log = tmp_path / "access.log"
    server = app_process(WORKERS_APP, env={"SPANS_DIR": str(spans_dir), "ACCESS_LOG": str(access_log)})
    url = server.wait_ready()
    sent: dict[str, tuple[str, str, str]] = {}  # trace id -> (parent span id, pid that answered, path)
    pids: set[str] = set()
    for number in range(200):  # fresh connections until both workers answered a few
        header, trace_id, span_id = traceparent()
        answer = httpx.get(f"{url}/items/{number}", headers={"traceparent": header, "Connection": "close"}, timeout=10)
        assert answer.status_code == 200
        pid = str(answer.json()["pid"])
        sent[trace_id] = (span_id, pid, f"/items/{number}")
        pids.add(pid)
        if len(pids) == 2 and number >= 20:
            break
    assert len(pids) == 2, f"only {pids} answered"
    header, missing_trace, missing_parent = traceparent()
    assert httpx.get(f"{url}/no/such/page", headers={"traceparent": header}, timeout=10).status_code == 404
    assert server.stop() == 0  # graceful: each worker's SDK flushes its spans at shutdown

    spans = read_spans(spans_dir)
    assert set(spans) >= pids, f"span files of {sorted(spans)}, workers {sorted(pids)}"
    by_trace: dict[str, tuple[str, dict[str, Any]]] = {}
    for pid, worker_spans in spans.items():
        for span in worker_spans:
            if span["name"].startswith("GET /pid"):
                continue  # the readiness probe
            trace_id = span["context"]["trace_id"].removeprefix("0x")
            assert trace_id not in by_trace, f"two spans for one request: {span}"
            by_trace[trace_id] = (pid, span)
    assert set(by_trace) == {*sent, missing_trace}
    for trace_id, (parent, pid, _path) in sent.items():
        worker, span = by_trace[trace_id]
        assert worker == pid, "the span was exported by another process than the one that served it"
        assert span["name"] == "GET /items/<int:number>"
        assert span["kind"] == "SpanKind.SERVER"
        assert span["parent_id"].removeprefix("0x") == parent
        assert span["attributes"]["http.route"] == "/items/<int:number>"
        assert span["resource"]["attributes"]["service.name"] == "shop"
    _, lost = by_trace[missing_trace]
    assert lost["name"] == "GET <unmatched>" and "http.route" not in lost["attributes"]
    log = access_log.read_text()
    for trace_id in sent:
        assert f"trace_id={trace_id}" in log


class Recording:
    """An app served in this process with an in-memory exporter, and its spans."""

    def __init__(self, serve, **options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.app = WebServer(__name__, tracing={"exporter": lambda: self.exporter}, **options)

    def start(self, serve, **keywords: Any) -> str:
        return serve(self.app, **keywords).url

    def spans(self) -> Sequence[ReadableSpan]:
        plugin = next(info.plugin for info in self.app.plugins if info.name == "otel")
        plugin.provider.force_flush()
        return self.exporter.get_finished_spans()


def test_cache_result_and_encoding_are_span_attributes(serve):
    from aeros import Gzip, SimpleCache

    recording = Recording(serve, cache=SimpleCache(), compression=Gzip(min_size=10))

    @recording.app.route("/report")
    @recording.app.cache(timeout=60)
    async def report() -> str:
        return "figures " * 500

    url = recording.start(serve)
    for _ in range(2):
        assert httpx.get(url + "/report", headers={"Accept-Encoding": "gzip"}, timeout=10).status_code == 200
    miss, hit = recording.spans()
    assert [miss.attributes["aeros.cache.result"], hit.attributes["aeros.cache.result"]] == ["miss", "hit"]
    for span in (miss, hit):
        assert span.name == "GET /report" and span.attributes["http.route"] == "/report"
        assert span.attributes["aeros.compress.encoding"] == "gzip"
        assert span.attributes["aeros.compress.bytes_in"] > span.attributes["aeros.compress.bytes_out"]


def test_an_exception_in_a_view_is_recorded_on_its_span(serve):
    recording = Recording(serve)

    @recording.app.route("/boom")
    async def boom() -> str:
        raise LookupError("no such thing")

    url = recording.start(serve)
    assert httpx.get(url + "/boom", timeout=10).status_code == 500
    (span,) = recording.spans()
    assert span.kind is SpanKind.SERVER and span.status.status_code is StatusCode.ERROR
    (event,) = [event for event in span.events if event.name == "exception"]
    assert event.attributes["exception.type"] == "LookupError"
    assert event.attributes["exception.message"] == "no such thing"


class StuckExporter(SpanExporter):
    """An exporter whose endpoint hangs: ``export`` blocks until released."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.called.set()
        self.release.wait(30)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_a_hanging_exporter_does_not_hold_requests(serve, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # export early: the first batch goes out at once
    stuck = StuckExporter()
    app = WebServer(__name__, tracing={"exporter": lambda: stuck})

    @app.route("/")
    async def home() -> str:
        return "home"

    url = serve(app).url
    with httpx.Client(timeout=10) as client:
        assert client.get(url + "/").status_code == 200
        assert stuck.called.wait(10), "the exporter was never called"
        answers = [client.get(url + "/").status_code for _ in range(50)]
    assert answers == [200] * 50
    assert not stuck.release.is_set(), "the exporter was released before the requests were answered"
    stuck.release.set()


def test_an_unreachable_otlp_endpoint_does_not_fail_requests(serve, monkeypatch):
    from .conftest import free_port

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    app = WebServer(__name__, tracing=True)

    @app.route("/")
    async def home() -> str:
        return "home"

    server = serve(app)
    assert [httpx.get(server.url + "/", timeout=10).status_code for _ in range(20)] == [200] * 20


def test_a_bad_exporter_setting_leaves_the_app_serving_with_a_warning(serve, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")
    logger = logging.getLogger("aeros.otel")
    logger.addHandler(caplog.handler)
    try:
        app = WebServer(__name__, tracing=True)

        @app.route("/")
        async def home() -> str:
            return "home"

        assert httpx.get(serve(app).url + "/", timeout=10).status_code == 200
        assert wait_for(lambda: "tracing is off" in caplog.text, 5), caplog.text
        assert "carrier-pigeon" in caplog.text
    finally:
        logger.removeHandler(caplog.handler)


def test_the_sdk_is_started_in_the_serving_process_not_at_construction():
    app = WebServer(__name__, tracing=True)
    plugin = next(info.plugin for info in app.plugins if info.name == "otel")
    assert plugin.provider is None  # nothing started before a fork could copy it
    from opentelemetry import trace

    assert not type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.sdk"), "global provider set"


@pytest.mark.parametrize("value", ["yes", {"exporter": "otlp"}, {"sampler": 1}])
def test_bad_tracing_settings_fail_at_construction(value):
    with pytest.raises(TypeError):
        WebServer(__name__, tracing=value)


@pytest.mark.parametrize("backend", installed_backends())
def test_every_server_backend_is_traced(serve, backend):
    recording = Recording(serve)

    @recording.app.route("/items/<int:number>")
    async def item(number: int) -> str:
        return str(number)

    url = recording.start(serve, server=backend)
    header, trace_id, parent = traceparent()
    assert httpx.get(url + "/items/3", headers={"traceparent": header}, timeout=10).status_code == 200
    (span,) = recording.spans()
    assert span.name == "GET /items/<int:number>"
    assert format(span.context.trace_id, "032x") == trace_id and format(span.parent.span_id, "016x") == parent


def test_otel_sdk_disabled_serves_untraced(serve, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    recording = Recording(serve)

    @recording.app.route("/")
    async def home() -> str:
        return "home"

    url = recording.start(serve)
    assert httpx.get(url + "/", timeout=10).status_code == 200
    plugin = next(info.plugin for info in recording.app.plugins if info.name == "otel")
    assert plugin.provider is None and recording.exporter.get_finished_spans() == ()


def comparable(span: ReadableSpan, url: str) -> dict[str, Any]:
    """What a span says, less what differs between two runs (ids, times, ports, stack traces)."""
    netloc = url.removeprefix("http://")

    def same_server(value: Any) -> Any:
        return value.replace(netloc, "SERVER") if isinstance(value, str) else value

    return {
        "name": span.name,
        "kind": span.kind,
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version),
        "attributes": {key: same_server(value) for key, value in span.attributes.items() if "port" not in key},
        "status": (span.status.status_code, span.status.description),
        "events": [
            (event.name, {key: value for key, value in event.attributes.items() if key != "exception.stacktrace"})
            for event in span.events
        ],
        "parent": None if span.parent is None else format(span.parent.span_id, "016x"),
        "trace": format(span.context.trace_id, "032x"),
    }


@pytest.mark.parametrize("semconv", ["", "http", "http/dup"])
def test_the_lean_server_span_equals_the_instrumentations(serve, monkeypatch, semconv):
    """aeros starts the server span itself when none of the instrumentation's optional features
    is configured; the spans are those of OpenTelemetryMiddleware, attribute for attribute."""
    from aeros_otel import edge
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability as stability

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", semconv)
    # read once per process: read again here, put back afterwards
    monkeypatch.setattr(stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})
    monkeypatch.setattr(stability, "_initialized", False)
    header, _, _ = traceparent()
    spans = []
    for lean in (True, False):
        if not lean:
            monkeypatch.setattr(edge, "lean_enough", lambda middleware: False)
        recording = Recording(serve)

        @recording.app.route("/items/<int:number>")
        async def item(number: int) -> str:
            return str(number)

        @recording.app.route("/boom")
        async def boom() -> str:
            raise LookupError("no such thing")

        url = recording.start(serve)
        with httpx.Client(headers={"user-agent": "probe"}) as client:
            assert client.get(url + "/items/3?q=1", headers={"traceparent": header}).status_code == 200
            assert client.get(url + "/no/such/page").status_code == 404
            assert client.post(url + "/boom").status_code == 405
            assert client.get(url + "/boom").status_code == 500
        spans.append([comparable(span, url) for span in recording.spans()])
    lean_spans, middleware_spans = spans
    for found in (lean_spans, middleware_spans):  # the traces of the requests without traceparent are new
        for span in found[1:]:
            span.pop("trace")
    assert lean_spans == middleware_spans
    assert [span["name"] for span in lean_spans] == [
        "GET /items/<int:number>",
        "GET <unmatched>",
        "POST <unmatched>",
        "GET /boom",
    ]


def test_configured_instrumentation_features_still_apply(serve, monkeypatch):
    """With a feature only the instrumentation has (here: captured request headers), it runs as is."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-tenant")
    recording = Recording(serve)

    @recording.app.route("/")
    async def home() -> str:
        return "home"

    url = recording.start(serve)
    assert httpx.get(url + "/", headers={"x-tenant": "blue"}, timeout=10).status_code == 200
    (span,) = recording.spans()
    assert span.attributes["http.request.header.x_tenant"] == ("blue",)
    assert span.name == "GET /" and span.attributes["http.route"] == "/"


def test_an_instrumentation_without_the_pieces_aeros_uses_runs_as_is(monkeypatch):
    from aeros_otel import edge
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    def middleware() -> OpenTelemetryMiddleware:
        return OpenTelemetryMiddleware(None, tracer_provider=TracerProvider(), meter_provider=NoOpMeterProvider())

    assert edge.lean_enough(middleware())
    moved = middleware()
    del moved._sem_conv_opt_in_mode
    assert not edge.lean_enough(moved)
    monkeypatch.setattr(edge, "_START_SPAN", None)
    assert not edge.lean_enough(middleware())
