"""The metrics aeros exports, and the cheap per-request updates of one process's values."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from .store import VALUE, Cell, ProcessStore

#: prometheus_client's default buckets, in seconds (+Inf is added)
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: methods kept as a label value; any other is counted as "_OTHER" (bounded cardinality)
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"))

REQUESTS = ("http_server_requests", "Requests answered, by method, URL rule and status.")
DURATION = ("http_server_request_duration_seconds", "Time from the request to the last byte of the response.")
ACTIVE = ("http_server_active_requests", "Requests in flight, over all live workers.")
CACHE = ("aeros_cache_requests", "Requests to cached views, by result (hit, stale, miss).")
RESTARTS = ("aeros_worker_restarts", "Workers replaced by the supervisor, by reason.")
COMPRESS = ("aeros_compress_bytes", "Bytes of encoded responses before (in) and after (out) compression.")

_pack_into = VALUE.pack_into  #: ``_pack_into(mapping, position, value)``: one cell's update on file


def _go_float(value: float) -> str:
    """The ``le`` label as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if value == float("inf") else repr(float(value))


class ProcessMetrics:
    """The metrics of one process; each update writes its few cells at once."""

    def __init__(self, store: ProcessStore, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.store = store
        self.bounds = tuple(sorted(float(b) for b in buckets if b != float("inf")))
        self.requests: dict[tuple[str, str, int], Cell] = {}
        self.durations: dict[tuple[str, str], tuple[list[Cell], Cell]] = {}
        #: (method, route, status) -> the request counter, the duration buckets and sum: one look-up a request
        self.series: dict[tuple[str, str, int], tuple[Cell, list[Cell], Cell]] = {}
        self.active = store.cell("gauge_livesum", ACTIVE[0], ACTIVE[0], (), ACTIVE[1])
        self.named: dict[tuple[str, str], Cell] = {}

    def started(self) -> None:
        active = self.active
        active.value += 1.0
        writer = active.writer
        if writer is not None and not self.store.broken:
            try:
                _pack_into(writer.m, active.pos, active.value)
            except Exception as error:
                self.store.fail(error)

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count a request whose response is complete (its cells are on file when this returns)."""
        series = self.series.get((method, route, status))
        if series is None:
            series = self._series(method, route, status)
        counter, buckets, total = series
        bucket = buckets[bisect_left(self.bounds, seconds)]
        active = self.active
        active.value -= 1.0
        counter.value += 1.0
        bucket.value += 1.0
        total.value += seconds
        writer = active.writer
        if writer is None or self.store.broken:
            return
        try:  # store.write four times, inlined: this runs for every request. All four cells of a
            # process share one writer per file kind; a cell made while the store was broken has none.
            _pack_into(writer.m, active.pos, active.value)
            _pack_into(counter.writer.m, counter.pos, counter.value)  # type: ignore[union-attr]
            m = total.writer.m  # type: ignore[union-attr]
            _pack_into(m, bucket.pos, bucket.value)
            _pack_into(m, total.pos, total.value)
        except Exception as error:  # includes a cell without a writer: stop writing, keep serving
            self.store.fail(error)

    def _series(self, method: str, route: str, status: int) -> tuple[Cell, list[Cell], Cell]:
        """The cells of a (method, route, status) not looked up before. A method outside
        :data:`KNOWN_METHODS` is counted as ``_OTHER`` and remembered only under that name
        (bounded, whatever methods clients send)."""
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        series = self.series.get((method, route, status))
        if series is None:
            counter = self.requests.get((method, route, status)) or self._counter(method, route, status)
            buckets, total = self.durations.get((method, route)) or self._histogram(method, route)
            series = self.series[(method, route, status)] = (counter, buckets, total)
        return series

    def _counter(self, method: str, route: str, status: int) -> Cell:
        labels = (("method", method), ("route", route), ("status", str(status)))
        cell = self.store.cell("counter", REQUESTS[0], REQUESTS[0] + "_total", labels, REQUESTS[1])
        self.requests[(method, route, status)] = cell
        return cell

    def _histogram(self, method: str, route: str) -> tuple[list[Cell], Cell]:
        name, help_text = DURATION
        labels = (("method", method), ("route", route))
        buckets = [
            self.store.cell("histogram", name, name + "_bucket", (*labels, ("le", _go_float(bound))), help_text)
            for bound in (*self.bounds, float("inf"))
        ]
        # every bucket, +Inf included, is on file (at 0) from the start
        total = self.store.cell("histogram", name, name + "_sum", labels, help_text)
        self.durations[(method, route)] = (buckets, total)
        return buckets, total

    def count(self, metric: tuple[str, str], label: str, value: str, amount: float = 1.0) -> None:
        """Add to one of the aeros counters with a single label (cache, restarts, compression)."""
        cell = self.named.get((metric[0], value))
        if cell is None:
            cell = self.named[(metric[0], value)] = self.store.cell(
                "counter", metric[0], metric[0] + "_total", ((label, value),), metric[1]
            )
        cell.value += amount
        self.store.write(cell)
