"""Folding the files of replaced workers into one archive per kind, so files stay few.

Every worker that ever served an instance leaves its ``counter_*`` and ``histogram_*`` files
(that is how its counts outlive it). When the supervisor replaces a worker, it folds that
worker's files into ``counter_archive.db`` / ``histogram_archive.db``: the values are added
(counters, and histogram buckets, which the files hold per bucket), and the archive records
which files it holds under the key :data:`FOLDED`, with the time of the fold.

A reader (:mod:`aeros_metrics.exposition`) takes the archive once, skips the files it holds,
and reads the rest, so every count is read exactly once whether it reads before or after a
fold: the archive is replaced in one rename, and a folded file stays on disk for
:data:`KEEP_SECONDS` more, for readers that took the archive just before the fold. Only then
is it deleted (and its entry dropped from the archive).
"""

from __future__ import annotations

import glob
import json
import os
import struct
import time
from collections.abc import Callable, Iterable
from typing import cast

from prometheus_client.mmap_dict import MmapedDict

#: prometheus_client's reader of a metrics file (not annotated there), typed: the
#: ``(key, value, timestamp, position)`` of each sample.
read_values = cast(Callable[[str], Iterable[tuple[str, float, float, int]]], MmapedDict.read_all_values_from_file)

#: metric name of the archive entries that list the folded files (never exported)
FOLDED = "aeros_folded_files"
#: how long a folded file stays on disk after its fold
KEEP_SECONDS = 60.0
KINDS = ("counter", "histogram")


def archive_path(directory: str, kind: str) -> str:
    return os.path.join(directory, f"{kind}_archive.db")


def folded_key(name: str) -> str:
    return json.dumps([FOLDED, FOLDED, {"file": name}, ""], sort_keys=True)


def read_archive(path: str) -> tuple[dict[str, float], dict[str, float]]:
    """``(values by key, fold time by folded file name)`` of an archive (empty when absent)."""
    values: dict[str, float] = {}
    folded: dict[str, float] = {}
    try:
        entries = list(read_values(path))
    except FileNotFoundError:
        return values, folded
    for key, value, _timestamp, _position in entries:
        name, _sample, labels, _help = json.loads(key)
        if name == FOLDED:
            folded[labels["file"]] = value
        else:
            values[key] = values.get(key, 0.0) + value
    return values, folded


def encode(values: dict[str, float]) -> bytes:
    """A whole file in the multiprocess format, for ``values``."""
    parts = [b""]
    used = 8
    for key, value in values.items():
        encoded = key.encode("utf-8")
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        entry = struct.pack(f"i{len(padded)}sdd", len(encoded), padded, value, 0.0)
        parts.append(entry)
        used += len(entry)
    parts[0] = struct.pack("ii", used, 0)
    return b"".join(parts)


def fold(directory: str, pid: int, now: float | None = None) -> None:
    """Fold the files of the dead process ``pid``; delete files folded more than KEEP_SECONDS ago."""
    now = time.time() if now is None else now
    for kind in KINDS:
        path = archive_path(directory, kind)
        values, folded = read_archive(path)
        for dead in sorted(glob.glob(os.path.join(directory, f"{kind}_{pid}-*.db"))):
            name = os.path.basename(dead)
            if name in folded:
                continue
            for key, value, _timestamp, _position in read_values(dead):
                values[key] = values.get(key, 0.0) + value
            folded[name] = now
        for name, when in list(folded.items()):
            if now - when > KEEP_SECONDS:
                try:
                    os.remove(os.path.join(directory, name))
                except FileNotFoundError:
                    pass
                del folded[name]
        content = {**values, **{folded_key(name): when for name, when in folded.items()}}
        temporary = path + ".tmp"
        with open(temporary, "wb") as out:
            out.write(encode(content))
        os.replace(temporary, path)
