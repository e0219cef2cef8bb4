"""One process's metric values, written straight into that process's own files.

The files are in prometheus_client's multiprocess format (``counter_<pid>-<tag>.db``,
``histogram_<pid>-<tag>.db``, ``gauge_livesum_<pid>-<tag>.db``, the tag telling a process from
an earlier one that had the same pid: a used-length header, then entries of a
JSON key padded to 8 bytes, a value and a timestamp), in the directory of one served instance,
so :mod:`aeros_metrics.exposition` can sum every process of the instance, dead ones included,
with prometheus_client's own reader.

Each sample is a :class:`Cell` that knows where its value sits in the mapped file; an update
is a float addition and an 8-byte write into the mapping, done before the response's last
byte is handed to the server, so a response a client received is counted even if its worker
is SIGKILLed the next instant. (prometheus_client's ``MmapedDict`` would cost a key lookup
and a 16-byte write per update; this writer keeps the position instead.)
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from collections.abc import Sequence
from typing import Any

from prometheus_client.mmap_dict import mmap_key

log = logging.getLogger("aeros.metrics")

INITIAL_SIZE = 1 << 16
_USED = struct.Struct("i")
VALUE = struct.Struct("d")  #: ``VALUE.pack(x)`` is what an update writes at a cell's position


class FileWriter:
    """Appends keys to one metrics file and maps it; values are written by position."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "x+b")  # never someone else's file
        self.capacity = INITIAL_SIZE
        self.file.truncate(self.capacity)
        self.m = mmap.mmap(self.file.fileno(), self.capacity)
        self.used = 8
        self.m[0:4] = _USED.pack(self.used)

    def add_key(self, key: str) -> int:
        """Append ``key`` with the value 0; return the position of its value."""
        encoded = key.encode("utf-8")
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        entry = struct.pack(f"i{len(padded)}sdd", len(encoded), padded, 0.0, 0.0)
        if self.used + len(entry) > self.capacity:
            while self.used + len(entry) > self.capacity:
                self.capacity *= 2
            self.file.truncate(self.capacity)
            self.m = mmap.mmap(self.file.fileno(), self.capacity)  # the old mapping goes with its last user
        self.m[self.used : self.used + len(entry)] = entry
        self.used += len(entry)
        self.m[0:4] = _USED.pack(self.used)  # readers see the entry only once it is complete
        return self.used - 16


class Cell:
    """One sample of one metric: its value here, and where the value sits in its file."""

    __slots__ = ("pos", "value", "writer")

    def __init__(self, writer: FileWriter | None, pos: int) -> None:
        self.value = 0.0
        self.writer = writer
        self.pos = pos


class ProcessStore:
    """The cells of one process, for one instance directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self.tag = f"{self.pid}-{os.urandom(4).hex()}"  #: this process's part of its file names
        self.writers: dict[str, FileWriter] = {}
        self.cells: dict[tuple[Any, ...], Cell] = {}
        self.broken = False

    def cell(self, kind: str, metric: str, sample: str, labels: Sequence[tuple[str, str]], help_text: str) -> Cell:
        """The cell of ``sample{labels}`` in the ``kind`` file, made on first use (callers keep it)."""
        ident = (kind, sample, tuple(labels))
        found = self.cells.get(ident)
        if found is None:
            key = mmap_key(metric, sample, [n for n, _ in labels], [v for _, v in labels], help_text)
            writer, pos = None, 0
            if not self.broken:
                try:
                    writer = self.writers.get(kind)
                    if writer is None:
                        writer = self.writers[kind] = FileWriter(os.path.join(self.directory, f"{kind}_{self.tag}.db"))
                    pos = writer.add_key(key)
                except Exception as error:
                    self.fail(error)
                    writer = None
            found = self.cells[ident] = Cell(writer, pos)
        return found

    def write(self, cell: Cell) -> None:
        """Put a cell's value into its file (the request path inlines this)."""
        writer = cell.writer
        if writer is not None and not self.broken:
            try:
                writer.m[cell.pos : cell.pos + 8] = VALUE.pack(cell.value)
            except Exception as error:
                self.fail(error)

    def fail(self, error: BaseException) -> None:
        """Stop writing (unwritable, removed, full); requests go on, this process's counts stay here."""
        if not self.broken:
            self.broken = True
            log.warning(
                "metrics of pid %d cannot be written to %s (%r): this process's counts are left out of"
                " the metrics from now on; requests are served as usual",
                self.pid,
                self.directory,
                error,
            )

    def close(self) -> None:
        for writer in self.writers.values():
            try:
                writer.m.close()
                writer.file.close()
            except (OSError, ValueError):  # already closed
                pass
        self.writers.clear()
