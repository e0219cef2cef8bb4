"""One process's metric values, kept in memory and mirrored into that process's own files.

The files are prometheus_client's multiprocess format (``counter_<pid>.db``,
``histogram_<pid>.db``, ``gauge_livesum_<pid>.db``, written with its ``MmapedDict``), in the
directory of one served instance, so :mod:`aeros_metrics.exposition` can sum every process of
the instance, dead ones included. A request changes plain Python floats (a few hundred
nanoseconds) and the changed values are written to the mmap before the last byte of the
response is handed to the server: a response a client received is counted even if its worker
is SIGKILLed right after. Other changes (requests starting, cache and compression events) are
written at the end of the event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Sequence

from prometheus_client.mmap_dict import MmapedDict, mmap_key

log = logging.getLogger("aeros.metrics")


class Cell:
    """One sample of one metric: its value in memory and its key in the process's file."""

    __slots__ = ("value", "key", "kind", "dirty")

    def __init__(self, kind: str, key: str) -> None:
        self.value = 0.0
        self.key = key
        self.kind = kind  #: the file it belongs to: "counter", "histogram", "gauge_livesum"
        self.dirty = False


class ProcessStore:
    """The cells of one process, for one instance directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self.files: dict[str, MmapedDict] = {}
        self.cells: dict[tuple, Cell] = {}
        self.dirty: list[Cell] = []
        self.scheduled = False
        self.broken = False

    def cell(self, kind: str, metric: str, sample: str, labels: Sequence[tuple[str, str]], help_text: str) -> Cell:
        """The cell of ``sample{labels}``, created on first use (callers keep it: this is not hot)."""
        ident = (kind, sample, tuple(labels))
        found = self.cells.get(ident)
        if found is None:
            key = mmap_key(metric, sample, [n for n, _ in labels], [v for _, v in labels], help_text)
            found = self.cells[ident] = Cell(kind, key)
        return found

    def add(self, cell: Cell, amount: float) -> None:
        """Change a cell in memory; :meth:`flush` or :meth:`flush_soon` writes it to the file."""
        cell.value += amount
        if not cell.dirty:
            cell.dirty = True
            self.dirty.append(cell)

    def flush_soon(self) -> None:
        """Write the changed cells at the end of this loop turn (at once outside an event loop)."""
        if self.scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every changed cell to this process's files."""
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for cell in dirty:
            cell.dirty = False
        if self.broken or not dirty:
            return
        try:
            for cell in dirty:
                target = self.files.get(cell.kind)
                if target is None:
                    target = self.files[cell.kind] = MmapedDict(
                        os.path.join(self.directory, f"{cell.kind}_{self.pid}.db")
                    )
                target.write_value(cell.key, cell.value, 0.0)
        except Exception as error:  # unwritable, removed, full: count in memory, serve what is readable
            self.broken = True
            log.warning(
                "metrics of pid %d cannot be written to %s (%r): this process's counts are left out of"
                " the metrics from now on; requests are served as usual",
                self.pid,
                self.directory,
                error,
            )

    def close(self) -> None:
        for target in self.files.values():
            try:
                target.close()
            except Exception:  # already unmapped
                pass
        self.files.clear()


def store_for(current: ProcessStore, directory: str) -> ProcessStore | None:
    """``current`` if it belongs to this process and ``directory``; ``None`` (make a new one) after a fork."""
    if current.pid == os.getpid() and current.directory == directory:
        return current
    return None
