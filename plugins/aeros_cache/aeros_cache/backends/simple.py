"""``SimpleCache``: memory of one process (and, with ``workers > 1``, invalidations shared by the workers)."""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..entry import Entry
from .base import CacheBackend, from_config
from .workers import WorkerChannel


class SimpleCache(CacheBackend):
    """Memory of one process: at most ``threshold`` entries and ``max_bytes`` bytes (keys, bodies
    and headers, plus an estimate of the objects around them), least recently used evicted first.
    An entry larger than ``max_bytes / 8`` is not stored.

    Safe to share between several servers in threads of one process (a lock guards it).
    """

    in_process = True
    #: what one entry costs besides its key, body and headers (Entry, tuple, dict slot): an estimate
    ENTRY_OVERHEAD = 600

    def __init__(
        self,
        threshold: int = 500,
        default_timeout: float = 300,
        *,
        max_bytes: int = 32 << 20,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if config:
            values = from_config(config, ("threshold", "default_timeout"), {})
            threshold = int(values.get("threshold", threshold))
            default_timeout = float(values.get("default_timeout", default_timeout))
        super().__init__(default_timeout)
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.threshold = threshold
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[str, tuple[float | None, Entry, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._channel = WorkerChannel()

    def _catch_up(self) -> None:
        """Apply what other workers deleted (called with the lock held; one memory read if nothing)."""
        for operation in self._channel.pending():
            kind = operation[0]
            if kind == "clear":
                self._data.clear()
                self.bytes = 0
            elif kind == "delete":
                self._drop(operation[1])
            elif kind == "prefix":
                for key in [key for key in self._data if key.startswith(operation[1])]:
                    self._drop(key)
            elif kind == "tags":
                wanted = set(operation[1])
                for key in [
                    k for k, item in self._data.items() if wanted.intersection(item[1].flags.get("tags") or ())
                ]:
                    self._drop(key)

    @classmethod
    def size_of(cls, key: str, entry: Entry) -> int:
        """Bytes an entry is counted for."""
        headers = sum(len(name) + len(value) + 100 for name, value in entry.headers)
        return sys.getsizeof(key) + len(entry.body) + headers + len(entry.etag) + cls.ENTRY_OVERHEAD

    def get_now(self, key: str) -> Entry | None:
        """Synchronous lookup (memory only; used by the ASGI edge without an ``await``)."""
        with self._lock:
            if self._channel.active:
                self._catch_up()
            item = self._data.get(key)
            if item is None:
                return None
            deadline, entry, _size = item
            if deadline is not None and time.time() >= deadline:
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return entry

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self.bytes -= item[2]

    async def get(self, key: str) -> Entry | None:
        return self.get_now(key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        deadline = None if ttl is None else time.time() + ttl
        size = self.size_of(key, entry)
        with self._lock:
            self._drop(key)
            if size > self.max_bytes // 8:
                return  # one entry may not push out most of the others
            self._data[key] = (deadline, entry, size)
            self.bytes += size
            while len(self._data) > self.threshold or self.bytes > self.max_bytes:
                self._drop(next(iter(self._data)))

    async def delete(self, key: str) -> None:
        with self._lock:
            self._drop(key)
            self._channel.publish(["delete", key])

    async def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [key for key in self._data if key.startswith(prefix)]
            for key in doomed:
                self._drop(key)
            self._channel.publish(["prefix", prefix])
        return len(doomed)

    def _delete_tags_now(self, tags: list[str]) -> int:
        wanted = set(tags)
        with self._lock:
            doomed = [key for key, item in self._data.items() if wanted.intersection(item[1].flags.get("tags") or ())]
            for key in doomed:
                self._drop(key)
            self._channel.publish(["tags", list(tags)])
        return len(doomed)

    async def delete_tags(self, tags: list[str]) -> int:
        return self._delete_tags_now(tags)

    def clear_now(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0
            self._channel.publish(["clear"])

    async def clear(self) -> None:
        self.clear_now()

    def __len__(self) -> int:
        return len(self._data)
