"""The metrics aeros exports, and the cheap per-request updates of one process's values."""

from __future__ import annotations

from bisect import bisect_left
from typing import Sequence

from .store import Cell, ProcessStore

#: prometheus_client's default buckets, in seconds (+Inf is added)
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: methods kept as a label value; any other is counted as "_OTHER" (bounded cardinality)
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"))

REQUESTS = ("http_server_requests", "Requests answered, by method, URL rule and status.")
DURATION = ("http_server_request_duration_seconds", "Time from the request to the last byte of the response.")
ACTIVE = ("http_server_active_requests", "Requests in flight, over all live workers.")
CACHE = ("aeros_cache_requests", "Requests to cached views, by result (hit, miss).")
RESTARTS = ("aeros_worker_restarts", "Workers replaced by the supervisor, by reason.")
COMPRESS = ("aeros_compress_bytes", "Bytes of encoded responses before (in) and after (out) compression.")


def _go_float(value: float) -> str:
    """The ``le`` label as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if value == float("inf") else repr(float(value))


class ProcessMetrics:
    """The metrics of one process: each update touches a few cells of its store."""

    def __init__(self, store: ProcessStore, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.store = store
        self.bounds = tuple(sorted(float(b) for b in buckets if b != float("inf")))
        self.requests: dict[tuple[str, str, int], Cell] = {}
        self.durations: dict[tuple[str, str], tuple[list[Cell], Cell]] = {}
        self.active = store.cell("gauge_livesum", ACTIVE[0], ACTIVE[0], (), ACTIVE[1])
        self.named: dict[tuple[str, str], Cell] = {}

    def started(self) -> None:
        self.store.add(self.active, 1.0)
        self.store.flush_soon()

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request whose response is complete; written to the file before returning."""
        store = self.store
        store.add(self.active, -1.0)
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        cell = self.requests.get((method, route, status))
        if cell is None:
            cell = self.requests[(method, route, status)] = store.cell(
                "counter",
                REQUESTS[0],
                REQUESTS[0] + "_total",
                (("method", method), ("route", route), ("status", str(status))),
                REQUESTS[1],
            )
        store.add(cell, 1.0)
        histogram = self.durations.get((method, route))
        if histogram is None:
            histogram = self.durations[(method, route)] = self._histogram(method, route)
        buckets, total = histogram
        store.add(buckets[bisect_left(self.bounds, seconds)], 1.0)
        store.add(total, seconds)
        store.flush()

    def _histogram(self, method: str, route: str) -> tuple[list[Cell], Cell]:
        name, help_text = DURATION
        labels = (("method", method), ("route", route))
        buckets = [
            self.store.cell("histogram", name, name + "_bucket", (*labels, ("le", _go_float(bound))), help_text)
            for bound in (*self.bounds, float("inf"))
        ]
        total = self.store.cell("histogram", name, name + "_sum", labels, help_text)
        for cell in (*buckets, total):  # every bucket is exported from the start, +Inf included
            self.store.add(cell, 0.0)
        return buckets, total

    def count(self, metric: tuple[str, str], label: str, value: str, amount: float = 1.0) -> None:
        """Add to one of the aeros counters with a single label (cache, restarts, compression)."""
        cell = self.named.get((metric[0], value))
        if cell is None:
            cell = self.named[(metric[0], value)] = self.store.cell(
                "counter", metric[0], metric[0] + "_total", ((label, value),), metric[1]
            )
        self.store.add(cell, amount)
        self.store.flush_soon()
