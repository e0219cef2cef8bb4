"""aeros-metrics on a real server (``run_in_thread``), talked to over HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aeros import WebServer
from aeros_core.testing import installed_backends, wait_for


def plugin_of(app: WebServer) -> Any:
    return next(info.plugin for info in app.plugins if info.name == "metrics")


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of every sample called ``name`` in a scrape."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


@pytest.fixture
def metrics_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Warnings of ``aeros.metrics`` (the ``aeros`` logger does not propagate once a server runs)."""
    logger = logging.getLogger("aeros.metrics")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, "aeros.metrics")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def make_app(**options: Any) -> WebServer:
    app = WebServer(__name__, **options)

    @app.route("/items/<int:number>")
    async def item(number: int) -> dict[str, int]:
        return {"number": number}

    @app.route("/boom")
    async def boom() -> str:
        raise RuntimeError("boom")

    return app


def test_requests_are_counted_by_url_rule_method_and_status(serve):
    server = serve(make_app(metrics=True))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(3):
            assert client.get(f"/items/{number}").status_code == 200
        assert client.post("/items/1").status_code == 405
        assert client.get("/boom").status_code == 500
        text = client.get("/metrics").text
    counts = samples(text, "http_server_requests_total")
    assert counts == {
        '{method="GET",route="/items/<int:number>",status="200"}': 3.0,
        '{method="POST",route="<unmatched>",status="405"}': 1.0,
        '{method="GET",route="/boom",status="500"}': 1.0,
    }
    assert samples(text, "http_server_active_requests") == {"": 0.0}


def test_the_histogram_has_every_bucket_and_counts_each_request_once(serve):
    server = serve(make_app(metrics={"buckets": [0.1, 1]}))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(4):
            client.get(f"/items/{number}")
        text = client.get("/metrics").text
    buckets = samples(text, "http_server_request_duration_seconds_bucket")
    rule = 'method="GET",route="/items/<int:number>"'
    assert set(buckets) == {f'{{le="0.1",{rule}}}', f'{{le="1.0",{rule}}}', f'{{le="+Inf",{rule}}}'}
    assert buckets[f'{{le="+Inf",{rule}}}'] == 4.0
    assert samples(text, "http_server_request_duration_seconds_count") == {f"{{{rule}}}": 4.0}


def test_a_flood_of_distinct_raw_paths_does_not_grow_the_series(serve):
    server = serve(make_app(metrics=True))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number in range(300):
            client.get(f"/no/such/{number}")
            client.get(f"/items/{number}", params={"q": number})
        text = client.get("/metrics").text
    counts = samples(text, "http_server_requests_total")
    assert counts == {
        '{method="GET",route="<unmatched>",status="404"}': 300.0,
        '{method="GET",route="/items/<int:number>",status="200"}': 300.0,
    }
    assert len(text.splitlines()) < 60, "a raw path leaked into the labels"
    assert "/no/such" not in text


def test_odd_methods_are_one_label_value(serve):
    server = serve(make_app(metrics=True))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for method in ("FOO", "BAR", "PROPFIND"):
            client.request(method, "/items/1")
        text = client.get("/metrics").text
    assert samples(text, "http_server_requests_total") == {'{method="_OTHER",route="<unmatched>",status="405"}': 3.0}


def test_the_scrape_is_answered_at_the_edge_not_cached_not_compressed_not_counted(serve):
    from aeros import Gzip, SimpleCache

    app = make_app(metrics={"path": "/internal/metrics"}, cache=SimpleCache(), compression=Gzip(min_size=1))
    server = serve(app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.get("/items/1")
        first = client.get("/internal/metrics", headers={"Accept-Encoding": "gzip"})
        second = client.get("/internal/metrics", headers={"Accept-Encoding": "gzip"})
        refused = client.post("/internal/metrics")
        head = client.head("/internal/metrics")
    for scrape in (first, second):
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "content-encoding" not in scrape.headers and "x-cache" not in scrape.headers
        assert scrape.headers["cache-control"] == "no-store"
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")
    assert head.status_code == 200 and head.content == b""
    counts = samples(second.text, "http_server_requests_total")
    assert counts == {'{method="GET",route="/items/<int:number>",status="200"}': 1.0}, "a scrape was counted"


def test_cache_results_and_compressed_bytes_come_through_the_event_hooks(serve):
    """aeros_cache_event and aeros_compress_event, implemented by aeros-metrics, fed by the other plugins."""
    from aeros import Gzip, SimpleCache

    app = WebServer(__name__, metrics=True, cache=SimpleCache(), compression=Gzip(min_size=10))

    @app.route("/report")
    @app.cache(timeout=60)
    async def report() -> str:
        return "figures " * 500

    server = serve(app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answers = [client.get("/report", headers={"Accept-Encoding": "gzip"}) for _ in range(3)]
        text = client.get("/metrics").text
    assert [a.headers.get("x-cache") for a in answers] == ["MISS", "HIT", "HIT"]
    assert all(a.headers["content-encoding"] == "gzip" for a in answers)
    assert samples(text, "aeros_cache_requests_total") == {'{result="miss"}': 1.0, '{result="hit"}': 2.0}
    compressed = samples(text, "aeros_compress_bytes_total")
    assert compressed['{direction="in"}'] == 3 * len("figures " * 500)
    assert 0 < compressed['{direction="out"}'] < compressed['{direction="in"}'] / 10
    # the edge-answered hits are named by their rule too
    assert samples(text, "http_server_requests_total") == {'{method="GET",route="/report",status="200"}': 3.0}


def test_without_metrics_nothing_is_installed():
    """Installed but off: no wrapper, no step, and the cache's aeros_cache_event emitter finds no listener."""
    from aeros_core.observe import listener
    from aeros_core.runner.settings import ServerSettings

    app = make_app(tracing=None)
    plugin = plugin_of(app)
    assert plugin.aeros_asgi_wrapper(app=app, settings=ServerSettings()) is None
    assert plugin.aeros_after_response(app=app) is None
    assert app.plugin_manager.hook.aeros_cache_event.get_hookimpls(), "the hook is implemented..."
    assert listener(app, "aeros_cache_event") is None  # ...but nobody listens: emitters pay nothing
    assert listener(make_app(metrics=True), "aeros_cache_event") is not None


def test_two_apps_in_one_process_keep_their_own_numbers(serve):
    one, two = make_app(metrics=True), make_app(metrics=True)
    first, second = serve(one), serve(two)
    httpx.get(first.url + "/items/1", timeout=10)
    assert plugin_of(one).directory != plugin_of(two).directory
    assert samples(httpx.get(first.url + "/metrics", timeout=10).text, "http_server_requests_total")
    assert samples(httpx.get(second.url + "/metrics", timeout=10).text, "http_server_requests_total") == {}
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_an_unusable_directory_degrades_with_a_warning_never_a_5xx(serve, metrics_log):
    app = make_app(metrics=True)
    server = serve(app)
    directory = Path(plugin_of(app).directory)
    shutil.rmtree(directory)
    directory.write_text("not a directory any more")  # even root cannot write files into this
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert [client.get(f"/items/{n}").status_code for n in range(5)] == [200] * 5
        scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert wait_for(lambda: "cannot be written" in metrics_log.text, 5), metrics_log.text
    assert "is gone" in metrics_log.text
    directory.unlink()


def test_a_damaged_file_is_left_out_with_a_warning(serve, metrics_log):
    app = make_app(metrics=True)
    server = serve(app)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.get("/items/1")
        directory = Path(plugin_of(app).directory)
        (directory / "counter_999999.db").write_bytes(b"\xff\xff\x00\x00" + b"\x00" * 64)
        (directory / "histogram_999998.db").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00{not json")
        scrape = client.get("/metrics")
        again = client.get("/metrics")
    assert scrape.status_code == again.status_code == 200
    assert samples(scrape.text, "http_server_requests_total") == {
        '{method="GET",route="/items/<int:number>",status="200"}': 1.0
    }
    damaged = {id(record) for record in metrics_log.records if "is damaged" in record.getMessage()}
    assert len(damaged) == 2, metrics_log.text  # once per file, not once per scrape


@pytest.mark.parametrize(
    "value, error",
    [
        ("yes", TypeError),
        ({"paht": "/m"}, TypeError),
        ({"path": "metrics"}, ValueError),
        ({"buckets": [0, 1]}, ValueError),
    ],
)
def test_bad_metrics_settings_fail_at_construction(value, error):
    with pytest.raises(error):
        WebServer(__name__, metrics=value)


@pytest.mark.parametrize("backend", installed_backends())
def test_every_server_backend_is_measured(serve, backend):
    server = serve(make_app(metrics=True), server=backend)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert [client.get(f"/items/{n}").status_code for n in range(3)] == [200] * 3
        text = client.get("/metrics").text
    assert samples(text, "http_server_requests_total") == {
        '{method="GET",route="/items/<int:number>",status="200"}': 3.0
    }


def test_an_unusable_directory_setting_falls_back_to_the_temp_dir_with_a_warning(serve, tmp_path, metrics_log):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    app = make_app(metrics={"directory": str(blocker / "metrics")})
    server = serve(app)
    assert httpx.get(server.url + "/items/1", timeout=10).status_code == 200
    scrape = httpx.get(server.url + "/metrics", timeout=10)
    assert samples(scrape.text, "http_server_requests_total") == {
        '{method="GET",route="/items/<int:number>",status="200"}': 1.0
    }
    assert "cannot make a metrics directory" in metrics_log.text
