"""What every bench app serves: the same bodies, the same 60 KB document, the same 20 ms view."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

HELLO = "Hello, World!"
SMALL = {"message": "Hello, World!"}
VIEW_SECONDS = 0.02  # /cached: the view sleeps this long on a miss
CACHE_SECONDS = 60
GZIP_LEVEL = 6  # for the stacks that compress by hand (no compression of their own)
MIN_COMPRESS = 500


def big_document(target_bytes: int = 60_000) -> dict[str, Any]:
    """A deterministic JSON document of about ``target_bytes`` once serialised."""
    words = (
        "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
        "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
    ).split()
    items: list[dict[str, Any]] = []
    document: dict[str, Any] = {"kind": "catalog", "version": 3, "items": items}
    index = 0
    while len(json.dumps(document)) < target_bytes:
        items.append(
            {
                "id": index,
                "sku": f"SKU-{index * 7919 % 100000:05d}",
                "name": f"{words[index % 26]} {words[index * 7 % 26]} {index}",
                "price": round(3.5 + (index * 37 % 1000) / 10, 2),
                "in_stock": index % 3 != 0,
                "tags": [words[(index + k) % 26] for k in range(index % 4 + 1)],
                "description": " ".join(words[(index * k) % 26] for k in range(1, 9)),
            }
        )
        index += 1
    return document


BIG = big_document()


def wants_gzip(accept_encoding: str | None) -> bool:
    return bool(accept_encoding) and "gzip" in accept_encoding


def gzip_body(body: bytes) -> bytes:
    return gzip.compress(body, GZIP_LEVEL)


class TinyCache:
    """A dict with expiry: the hand-written cache of stacks that ship none."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def set(self, key: str, value: Any, timeout: float = CACHE_SECONDS) -> None:
        self.entries[key] = (time.monotonic() + timeout, value)
