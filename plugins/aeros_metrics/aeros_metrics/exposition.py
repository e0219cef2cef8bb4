"""Reading an instance's metric files and writing the Prometheus text format.

prometheus_client's ``MultiProcessCollector`` does the merging (counters summed over every
process that ever served, dead ones included; histograms summed bucket by bucket; the live-sum
gauge summed over live processes); this module decides which files to read (the archives of
folded workers, see :mod:`aeros_metrics.fold`, and the files they do not hold) and which can
be trusted: a damaged file is left out with a warning (once per file), never an error for
the scraper.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any, cast

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .fold import FOLDED, KINDS, archive_path, read_archive, read_values

#: prometheus_client's merge of metrics files into metric families (not annotated there), typed
merge_files = cast(Callable[..., list[Metric]], MultiProcessCollector.merge)

log = logging.getLogger("aeros.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _Merged:
    """What ``generate_latest`` needs: something with ``collect()``."""

    def __init__(self, metrics: Iterable[Any]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Any]:
        return self.metrics


def readable(path: str) -> bool:
    """Whether ``path`` parses as a metrics file (a file removed meanwhile is not readable)."""
    try:
        for key, _value, _timestamp, _position in read_values(path):
            json.loads(key)
    except FileNotFoundError:
        return False
    return True


class Exposition:
    """Renders one instance directory; remembers which damaged files it already warned about."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.warned: set[str] = set()

    def render(self) -> bytes:
        if not os.path.isdir(self.directory):
            if self.directory not in self.warned:
                self.warned.add(self.directory)
                log.warning("the metrics directory %s is gone: the scrape has no numbers to show", self.directory)
            return b"# the metrics directory of this instance is gone\n"
        with tempfile.TemporaryDirectory(prefix="aeros-scrape-") as scratch:
            # Each archive is taken once (a fold replaces it in one rename): its values and its
            # list of folded files come from the same version, so nothing is read twice.
            folded: set[str] = set()
            candidates = []
            for kind in KINDS:
                try:
                    with open(archive_path(self.directory, kind), "rb") as source:
                        content = source.read()
                except FileNotFoundError:
                    continue
                copy = os.path.join(scratch, f"{kind}_archive.db")
                with open(copy, "wb") as target:
                    target.write(content)
                try:
                    folded.update(read_archive(copy)[1])
                except Exception as error:
                    self.warn(archive_path(self.directory, kind), error)
                    continue
                candidates.append(copy)
            for path in sorted(glob.glob(os.path.join(self.directory, "*.db"))):
                name = os.path.basename(path)
                if name not in folded and not name.endswith("_archive.db"):
                    candidates.append(path)
            good = []
            for path in candidates:
                try:
                    if readable(path):
                        good.append(path)
                except Exception as error:
                    self.warn(path, error)
            try:
                merged = [m for m in merge_files(good, accumulate=True) if m.name != FOLDED]
            except Exception as error:  # a file changed under us in a way the check did not see
                log.warning("metrics of %s could not be merged: %r", self.directory, error)
                return b"# metrics temporarily unavailable\n"
        return generate_latest(_Merged(merged))

    def warn(self, path: str, error: BaseException) -> None:
        if path not in self.warned:
            self.warned.add(path)
            log.warning("metrics file %s is damaged and left out of the metrics: %r", path, error)
