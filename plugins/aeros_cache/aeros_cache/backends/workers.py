"""Invalidations shared by the worker processes of one ``SimpleCache`` (``app.run(workers=N)``).

Each worker has its own memory, so a ``delete``/``invalidate``/``clear`` in one worker must
reach the others. The channel is self-contained (no supervisor involvement): a small file
mapped into memory by every process forked from the one that created the ``SimpleCache``
(named after that process's pid and the instance's number, in the temporary directory).
It holds a sequence number and a ring of the last :data:`SLOTS` operations. A writer appends
under ``flock``; every lookup compares the sequence number with the one it last applied (one
8-byte read from shared memory, no system call) and applies what is new, so the next request
any worker serves after the operation already sees it: well within 100 ms. A worker that fell
more than :data:`SLOTS` operations behind, or an operation too large for a slot, clears that
worker's memory instead: over-invalidation is always safe.
"""

from __future__ import annotations

import atexit
import fcntl
import itertools
import json
import mmap
import os
import struct
import tempfile
from typing import Any

SLOTS = 64
SLOT_SIZE = 1024
_SEQ = struct.Struct("<Q")
_SLOT_HEAD = struct.Struct("<QI")
_SIZE = _SEQ.size + SLOTS * SLOT_SIZE
_numbers = itertools.count()

CLEAR: list[Any] = ["clear"]


class WorkerChannel:
    def __init__(self) -> None:
        self.owner = os.getpid()
        self.path = os.path.join(tempfile.gettempdir(), f"aeros-simplecache-{self.owner}-{next(_numbers)}")
        self.active = False  # set in forked children only: a single process has nobody to tell
        self._map: mmap.mmap | None = None
        self._fd = -1
        self._seen = 0
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self._remove)

    def _forked(self) -> None:
        self.active = True
        self._map = None
        self._fd = -1

    def _remove(self) -> None:
        if os.getpid() == self.owner:
            try:
                os.remove(self.path)
            except OSError:
                pass

    def _open(self) -> mmap.mmap:
        if self._map is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            with _Locked(fd):
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
            self._fd = fd
            self._map = mmap.mmap(fd, _SIZE)
            self._seen = _SEQ.unpack_from(self._map, 0)[0]  # a new worker's memory is empty: nothing to apply
        return self._map

    def publish(self, operation: list[Any]) -> None:
        """Tell the other workers (and, harmlessly, this one: it skips its own sequence number)."""
        if not self.active:
            return
        memory = self._open()
        payload = json.dumps(operation).encode()
        if len(payload) > SLOT_SIZE - _SLOT_HEAD.size:
            payload = json.dumps(CLEAR).encode()
        with _Locked(self._fd):
            sequence = _SEQ.unpack_from(memory, 0)[0] + 1
            offset = _SEQ.size + (sequence % SLOTS) * SLOT_SIZE
            memory[offset + _SLOT_HEAD.size : offset + _SLOT_HEAD.size + len(payload)] = payload
            _SLOT_HEAD.pack_into(memory, offset, sequence, len(payload))
            _SEQ.pack_into(memory, 0, sequence)
        if self._seen == sequence - 1:
            self._seen = sequence  # already applied here by the caller

    def pending(self) -> list[list[Any]]:
        """Operations of other workers not applied here yet (``[CLEAR]`` if some were lost)."""
        memory = self._map if self._map is not None else self._open()
        latest = _SEQ.unpack_from(memory, 0)[0]
        if latest == self._seen:
            return []
        first, self._seen = self._seen + 1, latest
        if latest - first >= SLOTS:
            return [CLEAR]
        operations = []
        for sequence in range(first, latest + 1):
            offset = _SEQ.size + (sequence % SLOTS) * SLOT_SIZE
            written, size = _SLOT_HEAD.unpack_from(memory, offset)
            payload = bytes(memory[offset + _SLOT_HEAD.size : offset + _SLOT_HEAD.size + size])
            if written != sequence or _SLOT_HEAD.unpack_from(memory, offset)[0] != sequence:
                return [CLEAR]  # overwritten meanwhile: this worker fell behind
            try:
                operations.append(json.loads(payload))
            except ValueError:
                return [CLEAR]
        return operations


class _Locked:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
