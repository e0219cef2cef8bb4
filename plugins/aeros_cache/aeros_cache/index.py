"""The edge index: which ``(method, path)`` pairs a cached view has served, bounded in bytes."""

from __future__ import annotations

import sys
from typing import Any

#: what one index entry costs besides its path (tuple, dict slot, method string): an estimate
ENTRY_OVERHEAD = 200


class EdgeIndex:
    """``(method, path) -> ViewOptions``; the oldest pairs are dropped beyond ``max_bytes``.

    Paths longer than ``max_path`` characters are not indexed: their hits go through Quart
    (still cached), so a client sending long distinct paths cannot push the others out faster
    than short ones would. ``data`` is never replaced, so the edge may keep ``data.get``.
    """

    def __init__(self, max_bytes: int = 1 << 20, max_path: int = 2048) -> None:
        self.max_bytes = max_bytes
        self.max_path = max_path
        self.data: dict[tuple[str, str], Any] = {}
        self.bytes = 0

    @staticmethod
    def cost(path: str) -> int:
        return sys.getsizeof(path) + ENTRY_OVERHEAD

    def add(self, method: str, path: str, options: Any) -> None:
        if len(path) > self.max_path:
            return
        data = self.data
        pair = (method, path)
        if pair not in data:
            self.bytes += self.cost(path)
        data[pair] = options
        while self.bytes > self.max_bytes and data:
            oldest = next(iter(data))
            del data[oldest]
            self.bytes -= self.cost(oldest[1])

    def clear(self) -> None:
        self.data.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.data)
