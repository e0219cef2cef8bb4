"""``RedisCache``: entries in Redis, shared by every process and machine that uses the same server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, AsyncIterator, Mapping

from ..entry import DamagedEntry, Entry, decode, encode
from .base import CacheBackend, from_config

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
