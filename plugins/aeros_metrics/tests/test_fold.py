"""Folding replaced workers' files into the archive keeps every count, exactly once."""

from __future__ import annotations

from pathlib import Path

from aeros_metrics.exposition import Exposition
from aeros_metrics.fold import KEEP_SECONDS, fold
from aeros_metrics.metrics import CACHE, ProcessMetrics
from aeros_metrics.store import ProcessStore


def process(directory: Path, pid: int) -> ProcessMetrics:
    """The metrics of a pretend worker ``pid`` (its files are named as that pid's would be)."""
    store = ProcessStore(str(directory))
    store.pid, store.tag = pid, f"{pid}-test"
    return ProcessMetrics(store, buckets=(0.1, 1.0))


def scrape(directory: Path) -> list[str]:
    return sorted(line for line in Exposition(str(directory)).render().decode().splitlines() if line[0] != "#")


def test_folding_keeps_every_count_once_and_deletes_files_later(tmp_path):
    workers = {pid: process(tmp_path, pid) for pid in (101, 102, 103)}
    for pid, metrics in workers.items():
        for number in range(pid - 100):
            metrics.started()
            metrics.finished("GET", "/items/<int:id>", 200, 0.05 * number)
        metrics.count(CACHE, "result", "hit", pid)
    before = scrape(tmp_path)
    assert 'http_server_requests_total{method="GET",route="/items/<int:id>",status="200"} 6.0' in before
    assert 'http_server_request_duration_seconds_bucket{le="+Inf",method="GET",route="/items/<int:id>"} 6.0' in before

    fold(str(tmp_path), 101, now=1000.0)
    assert scrape(tmp_path) == before
    assert (tmp_path / "counter_101-test.db").exists(), "a folded file stays a while for readers in flight"
    fold(str(tmp_path), 101, now=1001.0)  # twice: nothing added twice
    assert scrape(tmp_path) == before

    fold(str(tmp_path), 102, now=1000.0 + KEEP_SECONDS + 1)
    assert scrape(tmp_path) == before
    assert not (tmp_path / "counter_101-test.db").exists() and not (tmp_path / "histogram_101-test.db").exists()
    assert (tmp_path / "counter_102-test.db").exists()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [
        "counter_102-test.db",
        "counter_103-test.db",
        "counter_archive.db",
        "gauge_livesum_101-test.db",  # dropped by the plugin's worker event, not by fold
        "gauge_livesum_102-test.db",
        "gauge_livesum_103-test.db",
        "histogram_102-test.db",
        "histogram_103-test.db",
        "histogram_archive.db",
    ]

    # the live worker goes on counting on top of the archive
    workers[103].finished("GET", "/items/<int:id>", 200, 0.01)
    after = scrape(tmp_path)
    assert 'http_server_requests_total{method="GET",route="/items/<int:id>",status="200"} 7.0' in after
    assert 'aeros_cache_requests_total{result="hit"} 306.0' in after
    assert "aeros_folded" not in "\n".join(after)


def test_a_damaged_archive_is_left_out_with_the_rest_still_served(tmp_path):
    metrics = process(tmp_path, 201)
    metrics.finished("GET", "/", 200, 0.01)
    (tmp_path / "counter_archive.db").write_bytes(b"\xff\xff\xff\x7f" + b"\x00" * 12)
    assert 'http_server_requests_total{method="GET",route="/",status="200"} 1.0' in scrape(tmp_path)


def test_the_per_request_lookup_stays_bounded_under_odd_methods(tmp_path):
    """Series are remembered per (method, route, status) under the counted method name only:
    a flood of odd methods is one ``_OTHER`` series, and each request is counted once."""
    metrics = process(tmp_path, 104)
    for number in range(500):
        metrics.started()
        metrics.finished(f"M{number}", "<unmatched>", 405, 0.01)
        metrics.started()
        metrics.finished("GET", "/items/<int:id>", 200, 0.5)
    assert set(metrics.series) == {("_OTHER", "<unmatched>", 405), ("GET", "/items/<int:id>", 200)}
    lines = scrape(tmp_path)
    assert 'http_server_requests_total{method="_OTHER",route="<unmatched>",status="405"} 500.0' in lines
    assert 'http_server_requests_total{method="GET",route="/items/<int:id>",status="200"} 500.0' in lines
    assert 'http_server_request_duration_seconds_bucket{le="1.0",method="GET",route="/items/<int:id>"} 500.0' in lines
    assert "http_server_active_requests 0.0" in lines
