"""A small LRU of compressed bodies, so a response with a strong ETag is compressed once.

Keyed by (path, query string, strong ETag, the algorithm's variant key): a strong ETag names
one exact byte sequence of one resource (RFC 9110 §8.8.1), so the compressed form of that body
can be reused for every later response that carries the same ETag, such as cache hits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class VariantCache:
    """Compressed bodies, least recently used dropped first, bounded in bytes.

    Used from one event loop (one per served server), so it needs no lock.
    """

    def __init__(self, max_bytes: int, max_entry: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry if max_entry is not None else max(max_bytes // 8, 1)
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()

    def get(self, key: Hashable, original_length: int) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != original_length:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, original_length: int, encoded: bytes) -> None:
        if len(encoded) > self.max_entry:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        self._entries[key] = (original_length, encoded)
        self.size += len(encoded)
        while self.size > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.size -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self), "bytes": self.size, "hits": self.hits, "misses": self.misses}
