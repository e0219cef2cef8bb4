"""``FileSystemCache``: one file per entry, shared by the processes of one machine."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import secrets
import struct
import tempfile
import time
import warnings
from collections.abc import Mapping
from typing import Any

from ..entry import DamagedEntry, Entry, decode, encode
from .base import CacheBackend, from_config

_FILE_HEAD = struct.Struct(">4sdI")  # magic, deadline (0 = never), key length
_FILE_MAGIC = b"AEF1"
_SUFFIX = ".entry"
_LOCK_SUFFIX = ".lock"


class FileSystemCache(CacheBackend):
    """Entries as files in ``directory``, shared by every process of one machine.

    Each write goes to a temporary file in the same directory and is renamed over the
    target (``os.replace``), so a reader sees the old entry or the new one, never half of
    one. At most about ``threshold`` files are kept (expired, then oldest, pruned first).
    All file work runs in a thread (``asyncio.to_thread``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        threshold: int = 1000,
        default_timeout: float = 300,
        mode: int = 0o600,
        *,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if config:
            values = from_config(config, ("directory", "threshold", "default_timeout"), {})
            directory = directory if directory is not None else values.get("directory")
            threshold = int(values.get("threshold", threshold))
            default_timeout = float(values.get("default_timeout", default_timeout))
        if directory is None:
            raise TypeError("FileSystemCache needs a directory: FileSystemCache('cache-dir')")
        super().__init__(default_timeout)
        self.directory = os.fspath(directory)
        self.threshold = threshold
        self.mode = mode
        self._writes = 0

    def describe(self) -> str:
        return f"FileSystemCache({self.directory!r})"

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, hashlib.sha256(key.encode()).hexdigest() + _SUFFIX)

    # blocking helpers (run in a thread)

    def _read(self, path: str) -> tuple[str, float, bytes] | None:
        """``(key, deadline, entry bytes)`` of a file, ``None`` if there is none; raises
        :class:`DamagedEntry` for a file that is not one this class wrote."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        if len(data) < _FILE_HEAD.size:
            raise DamagedEntry("truncated file head")
        magic, deadline, size = _FILE_HEAD.unpack_from(data)
        if magic != _FILE_MAGIC or not math.isfinite(deadline) or len(data) < _FILE_HEAD.size + size:
            raise DamagedEntry("bad file head")
        key = data[_FILE_HEAD.size : _FILE_HEAD.size + size].decode("utf-8", "replace")
        return key, deadline, data[_FILE_HEAD.size + size :]

    def _read_head(self, path: str) -> tuple[str, float] | None:
        """Key and deadline of one file, without reading its body (for pruning and deleting);
        ``None`` for a file that is gone or damaged."""
        try:
            with open(path, "rb") as handle:
                head = handle.read(_FILE_HEAD.size)
                if len(head) < _FILE_HEAD.size:
                    return None
                magic, deadline, size = _FILE_HEAD.unpack(head)
                if magic != _FILE_MAGIC or not math.isfinite(deadline):
                    return None
                return handle.read(size).decode("utf-8", "replace"), deadline
        except FileNotFoundError:
            return None

    def _get(self, key: str) -> Entry | None:
        path = self._path(key)
        try:
            found = self._read(path)
            if found is None or found[0] != key:
                return None
            if found[1] and time.time() >= found[1]:
                self._unlink(path)
                return None
            return decode(found[2])
        except DamagedEntry as error:
            self._unlink(path)
            self._report_damage(key, error)
            return None

    def _set(self, key: str, entry: Entry, ttl: float | None) -> None:
        os.makedirs(self.directory, exist_ok=True)
        raw_key = key.encode("utf-8")
        deadline = 0.0 if ttl is None else time.time() + ttl
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_FILE_HEAD.pack(_FILE_MAGIC, deadline, len(raw_key)))
                handle.write(raw_key)
                handle.write(encode(entry))
            os.chmod(tmp, self.mode)
            os.replace(tmp, self._path(key))
        except BaseException:
            self._unlink(tmp)
            raise
        self._writes += 1
        if self.threshold and self._writes % 32 == 1:
            self._prune()

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.remove(path)
        except OSError:
            pass

    def _entries(self) -> list[os.DirEntry[str]]:
        with os.scandir(self.directory) as listing:
            return [item for item in listing if item.name.endswith(_SUFFIX)]

    def _prune(self) -> None:
        files = self._entries()
        if len(files) <= self.threshold:
            return
        now = time.time()
        alive = []
        for item in files:
            found = self._read_head(item.path)
            if found is None or (found[1] and now >= found[1]):
                self._unlink(item.path)
            else:
                alive.append(item)
        excess = len(alive) - int(self.threshold * 0.8)
        if excess > 0:
            alive.sort(key=lambda item: item.stat().st_mtime)
            for item in alive[:excess]:
                self._unlink(item.path)

    def _delete_prefix(self, prefix: str) -> int:
        count = 0
        for item in self._entries():
            found = self._read_head(item.path)
            if found is not None and found[0].startswith(prefix):
                self._unlink(item.path)
                count += 1
        return count

    def _clear(self) -> None:
        if not os.path.isdir(self.directory):
            return
        for item in self._entries():
            self._unlink(item.path)

    # async API

    async def get(self, key: str) -> Entry | None:
        return await asyncio.to_thread(self._get, key)

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        await asyncio.to_thread(self._set, key, entry, ttl)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._unlink, self._path(key))

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_prefix, prefix)

    async def clear(self) -> None:
        await asyncio.to_thread(self._clear)

    # --- tags ---

    def _delete_tags(self, tags: list[str]) -> int:
        wanted = set(tags)
        count = 0
        for item in self._entries():
            try:
                found = self._read(item.path)
                entry = None if found is None else decode(found[2])
            except DamagedEntry:
                continue  # left for the next read of its key
            if entry is not None and wanted.intersection(entry.flags.get("tags") or ()):
                self._unlink(item.path)
                count += 1
        return count

    async def delete_tags(self, tags: list[str]) -> int:
        return await asyncio.to_thread(self._delete_tags, tags)

    # --- single flight across the processes of the machine: lock files ---

    shared_locks = True

    def _lock_path(self, key: str) -> str:
        return self._path(key)[: -len(_SUFFIX)] + _LOCK_SUFFIX

    def _acquire(self, key: str) -> str | None:
        """Create the lock file exclusively; a lock file past its deadline (its holder died or
        hung) is broken first. Content: ``token deadline``."""
        os.makedirs(self.directory, exist_ok=True)
        path = self._lock_path(key)
        token = secrets.token_hex(16)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
            except FileExistsError:
                holder = self._lock_holder(path)
                if holder is not None and time.time() < holder[1]:
                    return None
                self._unlink(path)  # expired, or unreadable (a crash between create and write)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{token} {time.time() + self.lock_timeout!r}")
            return token
        return None

    def _lock_holder(self, path: str) -> tuple[str, float] | None:
        """``(token, deadline)`` of a lock file; ``None`` if it is gone, or unreadable and older
        than ``lock_timeout`` (treated as expired); an unreadable young one counts as held."""
        try:
            with open(path) as handle:
                token, deadline = handle.read(200).split()
            return token, float(deadline)
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            try:
                age = time.time() - os.stat(path).st_mtime
            except OSError:
                return None
            return None if age > self.lock_timeout else ("", time.time() + self.lock_timeout - age)

    def _release(self, key: str, token: str) -> None:
        path = self._lock_path(key)
        holder = self._lock_holder(path)
        if holder is not None and holder[0] == token:
            self._unlink(path)

    def _extend(self, key: str, token: str) -> bool:
        """Rewrite the deadline of the lock file in place, only if it still holds ``token``.

        In place, through the descriptor the token was read from, never by creating or renaming
        a file: if the lock expired and another process broke it (unlink, then ``O_EXCL``
        create) meanwhile, the write lands in the unlinked file and the new holder's file is
        untouched; the path then names another file, which is reported as a lost lock. The new
        content is padded to the old length, so no stale digits are left behind it."""
        path = self._lock_path(key)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            old = os.read(fd, 200).decode("utf-8", "replace")
            parts = old.split()
            if len(parts) != 2 or parts[0] != token:
                return False
            text = f"{token} {time.time() + self.lock_timeout!r}".ljust(len(old))
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, text.encode())
            mine = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                return False
            return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)
        finally:
            os.close(fd)

    async def acquire(self, key: str) -> str | None:
        return await asyncio.to_thread(self._acquire, key)

    async def extend(self, key: str, token: str) -> bool:
        return await asyncio.to_thread(self._extend, key, token)

    async def release(self, key: str, token: str) -> None:
        await asyncio.to_thread(self._release, key, token)

    async def wait_released(self, key: str, timeout: float) -> None:
        """Files have no notifications: look at the lock file every 5 ms at first, backing off to
        100 ms, until it is gone, past its deadline (a renewing holder keeps pushing it), or
        held by another token than the first seen (bounded by ``timeout``)."""
        path = self._lock_path(key)
        deadline = time.monotonic() + timeout
        pause = 0.005
        seen = None
        while time.monotonic() < deadline:
            holder = await asyncio.to_thread(self._lock_holder, path)
            if holder is None or time.time() >= holder[1]:
                return
            if not seen:  # ("" for a file still being written)
                seen = holder[0]
            elif holder[0] and holder[0] != seen:  # released (or expired) and taken by another since
                return
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.1)


class FilesystemCache(FileSystemCache):
    """Deprecated alias of :class:`FileSystemCache` (the original Aeros spelling)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("FilesystemCache is deprecated; use FileSystemCache", DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
