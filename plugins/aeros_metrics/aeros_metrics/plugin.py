"""The aeros-metrics plugin: the ``metrics=`` keyword, per-instance files, the scrape path.

Where the numbers live: each served instance (one ``app.run(...)`` with all its workers, or one
``run_in_thread`` server) gets a directory of its own, made by :func:`aeros_server_config` in the
process that creates the sockets (the supervisor) and named after its pid; every worker writes
its own files there and any worker answering a scrape reads them all. Nothing process-global
is touched: no ``PROMETHEUS_MULTIPROC_DIR``, no default registry. The directory is removed when
the supervisor's plugin instance goes away (at exit at the latest).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aeros_core.hookspecs import hookimpl
from aeros_core.observe import RouteRecorder
from aeros_core.options import Option
from aeros_core.pipeline import AfterResponse, AsgiWrapper, Stage

from .edge import metrics_wrapper
from .exposition import Exposition
from .fold import fold
from .metrics import CACHE, COMPRESS, DEFAULT_BUCKETS, RESTARTS, ProcessMetrics
from .store import ProcessStore

log = logging.getLogger("aeros.metrics")

#: below the access log (OBSERVE), above everything that may answer or change a response
METRICS_STAGE = Stage.OBSERVE - 10


@dataclass(frozen=True)
class MetricsConfig:
    """``metrics=`` after validation."""

    path: str = "/metrics"
    directory: str | None = None  #: where instance directories are made; None: the system's temp dir
    buckets: tuple[float, ...] = DEFAULT_BUCKETS


def parse(value: Any) -> MetricsConfig | None:
    """``metrics=True``, ``False``/``None`` or a dict of :class:`MetricsConfig` fields."""
    if value is None or value is False:
        return None
    if value is True:
        return MetricsConfig()
    if not isinstance(value, Mapping):
        raise TypeError(f"metrics= takes True, False or a dict like {{'path': '/metrics'}}, got {value!r}")
    unknown = set(value) - {"path", "directory", "buckets"}
    if unknown:
        raise TypeError(f"metrics= does not take {sorted(unknown)}; it takes 'path', 'directory', 'buckets'")
    path = value.get("path", "/metrics")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"metrics path must start with '/', got {path!r}")
    buckets = tuple(value.get("buckets", DEFAULT_BUCKETS))
    if not buckets or any(not isinstance(b, (int, float)) or b <= 0 for b in buckets):
        raise ValueError(f"metrics buckets must be positive numbers of seconds, got {buckets!r}")
    return MetricsConfig(path, value.get("directory"), tuple(sorted(set(buckets))))


class MetricsPlugin:
    """Prometheus metrics for one ``WebServer``, summed over all its workers."""

    def __init__(self) -> None:
        self.config: MetricsConfig | None = None
        self.app: Any = None
        #: the directory of the instance being served from this process tree
        self.directory: str | None = None
        self.routes: RouteRecorder | None = None
        #: this process's values (set in the serving process when its server starts)
        self.process: ProcessMetrics | None = None
        #: the supervisor's own values (worker restarts)
        self.own: ProcessMetrics | None = None

    @property
    def observing(self) -> bool:
        """Whether this app listens to the event hooks (``metrics=`` is on); see ``aeros_core.observe.listener``."""
        return self.config is not None

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [
            Option(
                "metrics",
                None,
                "Prometheus metrics of all workers at /metrics: True, or {'path': ..., 'directory': ..., 'buckets': ...}",
            )
        ]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        self.config = parse(options["metrics"])
        self.app = app
        if self.config is not None:
            self.routes = RouteRecorder(app)

    # --- where the files go --------------------------------------------------------------

    @hookimpl
    def aeros_server_config(self, app: Any, settings: Any) -> None:
        if self.config is not None:
            self.directory = self.new_directory()

    def new_directory(self) -> str | None:
        """A directory for this instance; the system's temp dir if ``directory`` is unusable; None: no metrics."""
        assert self.config is not None
        prefix = f"aeros-metrics-{os.getpid()}-"
        for parent in dict.fromkeys((self.config.directory, None)):
            try:
                directory = tempfile.mkdtemp(prefix=prefix, dir=parent)
            except OSError as error:
                log.warning("cannot make a metrics directory in %s: %r", parent or tempfile.gettempdir(), error)
                continue
            weakref.finalize(self, shutil.rmtree, directory, True)
            return directory
        log.warning("metrics are off for this server: no directory for them could be made")
        return None

    # --- the request path ----------------------------------------------------------------

    @hookimpl
    def aeros_after_response(self, app: Any) -> AfterResponse | None:
        return None if self.routes is None else self.routes.step()

    @hookimpl
    def aeros_asgi_wrapper(self, app: Any, settings: Any) -> AsgiWrapper | None:
        if self.config is None or self.routes is None:
            return None
        if self.directory is None:  # served by a server aeros did not start: this process only
            self.directory = self.new_directory()
            if self.directory is None:
                return None
        store = ProcessStore(self.directory)
        self.process = ProcessMetrics(store, self.config.buckets)
        exposition = Exposition(self.directory)
        return AsgiWrapper(METRICS_STAGE, metrics_wrapper(self.config.path, self.process, exposition, self.routes))

    # --- events from other plugins and the supervisor ------------------------------------

    @hookimpl
    def aeros_cache_event(self, result: str) -> None:
        if self.process is not None:
            self.process.count(CACHE, "result", result)

    @hookimpl
    def aeros_compress_event(self, bytes_in: int, bytes_out: int) -> None:
        process = self.process
        if process is not None:
            process.count(COMPRESS, "direction", "in", bytes_in)
            process.count(COMPRESS, "direction", "out", bytes_out)

    @hookimpl
    def aeros_worker_event(self, event: str, reason: str, pid: int) -> None:
        if self.config is None or self.directory is None or event != "replaced":
            return
        own = self.own
        if own is None or own.store.pid != os.getpid() or own.store.directory != self.directory:
            own = self.own = ProcessMetrics(ProcessStore(self.directory), self.config.buckets)
        own.count(RESTARTS, "reason", reason)
        try:
            for gauge in glob.glob(os.path.join(self.directory, f"gauge_livesum_{pid}-*.db")):
                os.remove(gauge)  # its requests in flight are no longer active
            fold(self.directory, pid)  # its counts go to the archive: files stay few
        except Exception as error:  # the counts stay in its files, still read by every scrape
            log.warning("could not fold the metrics files of replaced worker %d: %r", pid, error)
