"""Cache backends: memory (``SimpleCache``), files (``FileSystemCache``) and Redis (``RedisCache``).

A backend stores :class:`~aeros_cache.entry.Entry` objects under string keys. Every method is
``async`` and never blocks the event loop: file I/O runs in ``asyncio.to_thread``, Redis goes
through ``redis.asyncio``. Backends raise on failure; the plugin turns failures into misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import struct
import sys
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any, AsyncIterator, Mapping

from .entry import DamagedEntry, Entry, decode, encode

log = logging.getLogger("aeros.cache")

#: flask-caching configuration names (the original Aeros passed ``config={...}``) -> keywords
_CONFIG_NAMES = {
    "CACHE_DEFAULT_TIMEOUT": "default_timeout",
    "CACHE_THRESHOLD": "threshold",
    "CACHE_DIR": "directory",
    "CACHE_REDIS_URL": "url",
    "CACHE_REDIS_HOST": "host",
    "CACHE_REDIS_PORT": "port",
    "CACHE_REDIS_PASSWORD": "password",
    "CACHE_REDIS_DB": "db",
    "CACHE_KEY_PREFIX": "key_prefix",
}


def from_config(config: Mapping[str, Any] | None, accepted: tuple[str, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Keywords from a flask-caching ``config`` mapping; explicit keywords win."""
    if not config:
        return given
    values = dict(given)
    for name, value in config.items():
        keyword = _CONFIG_NAMES.get(name)
        if keyword in accepted:
            values.setdefault(keyword, value)
        elif name != "CACHE_TYPE":
            log.warning("cache configuration %s is not used by this backend", name)
    return values


__all__ = ["CacheBackend", "SimpleCache", "FileSystemCache", "FilesystemCache", "RedisCache"]


class CacheBackend:
    """Base class of the backends. ``default_timeout`` (seconds, ``0`` = never) applies to
    ``@app.cache(timeout=None)``."""

    #: whether a lookup is cheap enough to be done for every request at the ASGI edge
    in_process: bool = False
    #: seconds a failing kind of operation (reads or writes) is skipped before it is tried again
    retry_after: float = 1.0

    def __init__(self, default_timeout: float = 300) -> None:
        self.default_timeout = default_timeout

    async def get(self, key: str) -> Entry | None:
        raise NotImplementedError

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        """Store ``entry``; ``ttl`` seconds until the backend may drop it (``None``: never)."""
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; return how many went."""
        raise NotImplementedError

    async def clear(self) -> None:
        raise NotImplementedError

    async def startup(self) -> None:
        """Open per-event-loop resources (called in each serving loop)."""

    async def shutdown(self) -> None:
        """Close what :meth:`startup` opened in the current loop."""

    def describe(self) -> str:
        return type(self).__name__

    def _report_damage(self, key: str, error: DamagedEntry) -> None:
        """Log a damaged entry once (it is deleted; if deleting fails, the key is remembered)."""
        reported = self.__dict__.setdefault("_damaged_reported", OrderedDict())
        if hash(key) in reported:
            return
        reported[hash(key)] = None
        while len(reported) > 256:
            reported.popitem(last=False)
        log.warning(
            "cache entry %.200r in %s is damaged (%s): deleted, answered as a miss", key, self.describe(), error
        )


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

    @classmethod
    def size_of(cls, key: str, entry: Entry) -> int:
        """Bytes an entry is counted for."""
        headers = sum(len(name) + len(value) + 100 for name, value in entry.headers)
        return sys.getsizeof(key) + len(entry.body) + headers + len(entry.etag) + cls.ENTRY_OVERHEAD

    def get_now(self, key: str) -> Entry | None:
        """Synchronous lookup (memory only; used by the ASGI edge without an ``await``)."""
        with self._lock:
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

    async def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [key for key in self._data if key.startswith(prefix)]
            for key in doomed:
                self._drop(key)
        return len(doomed)

    def clear_now(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0

    async def clear(self) -> None:
        self.clear_now()

    def __len__(self) -> int:
        return len(self._data)


# --- files ----------------------------------------------------------------------------------

_FILE_HEAD = struct.Struct(">4sdI")  # magic, deadline (0 = never), key length
_FILE_MAGIC = b"AEF1"
_SUFFIX = ".entry"


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
        import hashlib

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


class FilesystemCache(FileSystemCache):
    """Deprecated alias of :class:`FileSystemCache` (the original Aeros spelling)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warnings.warn("FilesystemCache is deprecated; use FileSystemCache", DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)


# --- Redis ----------------------------------------------------------------------------------


#: compare-and-delete: ``DEL KEYS[1]`` only if it still holds ``ARGV[1]``
_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisCache(CacheBackend):
    """Entries in Redis, shared by every process and machine that uses the same server.

    ``url`` (``redis://[:password@]host:port/db``, ``rediss://`` for TLS) wins over
    ``host``/``port``/``password``/``db``. Keys are namespaced by ``key_prefix`` so that
    :meth:`clear` deletes only this cache's keys, never the whole database. One connection
    pool per event loop (each worker, each threaded server), opened at startup and closed at
    shutdown; ``socket_timeout`` bounds how long a dead server can hold a request.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        password: str | None = None,
        db: int = 0,
        url: str | None = None,
        key_prefix: str = "aeros-cache:",
        default_timeout: float = 300,
        socket_timeout: float = 1.0,
        max_connections: int | None = 64,
        config: Mapping[str, Any] | None = None,
        **redis_options: Any,
    ) -> None:
        if config:
            names = ("url", "host", "port", "password", "db", "key_prefix", "default_timeout")
            values = from_config(config, names, {})
            url = url if url is not None else values.get("url")
            host = str(values.get("host", host))
            port = int(values.get("port", port))
            password = password if password is not None else values.get("password")
            db = int(values.get("db", db))
            key_prefix = str(values.get("key_prefix", key_prefix))
            default_timeout = float(values.get("default_timeout", default_timeout))
        super().__init__(default_timeout)
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("RedisCache needs the redis package: pip install 'aeros[redis]'") from error
        self.url = url
        self.host, self.port, self.password, self.db = host, port, password, db
        self.key_prefix = key_prefix
        self.socket_timeout = socket_timeout
        self.max_connections = max_connections
        self.redis_options = redis_options
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        if self.url:
            return f"RedisCache({self.url.split('@')[-1]!r})"
        return f"RedisCache({self.host}:{self.port}/{self.db})"

    def _new_client(self) -> Any:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "max_connections": self.max_connections,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(self.redis_options)
        if self.url:
            pool = aioredis.ConnectionPool.from_url(self.url, **options)
        else:
            pool = aioredis.ConnectionPool(
                host=self.host, port=self.port, password=self.password, db=self.db, **options
            )
        return aioredis.Redis(connection_pool=pool)

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            with self._lock:
                client = self._clients.get(loop)
                if client is None:
                    client = self._clients[loop] = self._new_client()
        return client

    async def startup(self) -> None:
        """Open this loop's pool and one connection (a wrong URL shows up in the log at once)."""
        await self._client().ping()

    async def shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose(close_connection_pool=True)

    async def get(self, key: str) -> Entry | None:
        client = self._client()
        name = self.key_prefix + key
        data = await client.get(name)
        if data is None:
            return None
        try:
            return decode(data)
        except DamagedEntry as error:
            # delete it unless a writer replaced it meanwhile
            await client.eval(_DELETE_IF_EQUAL, 1, name, data)
            self._report_damage(key, error)
            return None

    async def set(self, key: str, entry: Entry, ttl: float | None) -> None:
        milliseconds = None if ttl is None else max(1, int(ttl * 1000))
        await self._client().set(self.key_prefix + key, encode(entry), px=milliseconds)

    @contextlib.asynccontextmanager
    async def _admin_client(self) -> AsyncIterator[Any]:
        """This loop's pool if it is serving; else a client closed afterwards (``asyncio.run(...)``
        in a script, ``app.clear_cache_sync()``), so one-off calls leave no connection behind."""
        client = self._clients.get(asyncio.get_running_loop())
        if client is not None:
            yield client
            return
        client = self._new_client()
        try:
            yield client
        finally:
            await client.aclose(close_connection_pool=True)

    async def delete(self, key: str) -> None:
        async with self._admin_client() as client:
            await client.delete(self.key_prefix + key)

    async def delete_prefix(self, prefix: str) -> int:
        async with self._admin_client() as client:
            return await self._delete_prefix(client, prefix)

    async def _delete_prefix(self, client: Any, prefix: str) -> int:
        count = 0
        batch: list[Any] = []
        async for name in client.scan_iter(match=_glob_escape(self.key_prefix + prefix) + "*", count=500):
            batch.append(name)
            if len(batch) >= 500:
                count += await client.unlink(*batch)
                batch = []
        if batch:
            count += await client.unlink(*batch)
        return count

    async def clear(self) -> None:
        await self.delete_prefix("")
