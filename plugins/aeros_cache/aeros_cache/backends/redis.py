"""``RedisCache``: entries in Redis, shared by every process and machine that uses the same server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from ..entry import DamagedEntry, Entry, decode, encode
from .base import CacheBackend, from_config

log = logging.getLogger("aeros.cache")

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
        self._listeners: dict[asyncio.AbstractEventLoop, _Listener] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        if self.url:
            return f"RedisCache({self.url.split('@')[-1]!r})"
        return f"RedisCache({self.host}:{self.port}/{self.db})"

    def _new_client(self, socket_timeout: float | None = -1.0) -> Any:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_timeout": self.socket_timeout if socket_timeout == -1.0 else socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "max_connections": self.max_connections,
            "retry": Retry(cast(Any, NoBackoff)(), 0),  # untyped in redis 5
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
        listener = self._listeners.pop(loop, None)
        if listener is not None:
            await listener.close()
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
        tags = entry.flags.get("tags")
        if not tags:
            await self._client().set(self.key_prefix + key, encode(entry), px=milliseconds)
            return
        names = [self.key_prefix + key, *(self._tag_name(tag) for tag in tags)]
        await self._client().eval(_SET_WITH_TAGS, len(names), *names, encode(entry), milliseconds or 0)

    def _tag_name(self, tag: str) -> str:
        return f"{self.key_prefix}tag:{tag}"

    async def delete_tags(self, tags: list[str]) -> int:
        count = 0
        async with self._admin_client() as client:
            for tag in tags:
                count += int(await client.eval(_DELETE_TAG, 1, self._tag_name(tag)))
        return count

    # --- single flight across processes and machines ---

    shared_locks = True

    async def acquire(self, key: str) -> str | None:
        token = secrets.token_hex(16)
        taken = await self._client().set(self._lock_name(key), token, nx=True, px=int(self.lock_timeout * 1000))
        return token if taken else None

    async def release(self, key: str, token: str) -> None:
        await self._client().eval(_RELEASE, 1, self._lock_name(key), token, self._channel(key))

    async def extend(self, key: str, token: str) -> bool:
        name = self._lock_name(key)
        return bool(await self._client().eval(_EXTEND, 1, name, token, int(self.lock_timeout * 1000)))

    async def wait_released(self, key: str, timeout: float) -> None:
        listener = self._listener()
        future = listener.expect(self._channel(key))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        name = self._lock_name(key)
        try:
            # subscribed before looking: a release between the two cannot be missed
            await listener.ready(timeout)
            seen = None
            while True:
                holder, left = await self._client().eval(_HOLDER, 1, name)
                if holder is None or left < 0:  # no lock (-2) or, never written by us, no expiry (-1)
                    return
                if seen is None:
                    seen = holder
                elif holder != seen:  # released (or expired) and taken by another since
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(asyncio.shield(future), min(remaining, left / 1000 + 0.01))
                    return  # released (or the notifications stopped: look again)
                except asyncio.TimeoutError:
                    pass  # its expiry: gone, or renewed by a holder still running its view
        finally:
            listener.forget(self._channel(key), future)

    def _lock_name(self, key: str) -> str:
        return f"{self.key_prefix}lock:{key}"

    def _channel(self, key: str) -> str:
        return f"{self.key_prefix}released:{key}"

    def _listener(self) -> _Listener:
        loop = asyncio.get_running_loop()
        listener = self._listeners.get(loop)
        if listener is None or listener.dead:
            listener = self._listeners[loop] = _Listener(self, _glob_escape(self.key_prefix) + "released:*")
        return listener

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


#: ``SET`` an entry and add its key to the set of each tag; a tag set lives as long as its longest entry
_SET_WITH_TAGS = """
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else redis.call('SET', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  local left = redis.call('PTTL', KEYS[i])
  if tonumber(ARGV[2]) == 0 then redis.call('PERSIST', KEYS[i])
  elseif left ~= -1 and left < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
end
return 1
"""
#: delete the entries of one tag and the tag's set; returns how many entries went
_DELETE_TAG = """
local keys = redis.call('SMEMBERS', KEYS[1])
local count = 0
for i = 1, #keys do count = count + redis.call('UNLINK', keys[i]) end
redis.call('DEL', KEYS[1])
return count
"""
#: renew a lock only if this token holds it (compare-and-extend); 1 if renewed, 0 if lost
_EXTEND = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
#: a lock's holder token (nil if free) and milliseconds left, read together
_HOLDER = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"
#: release a lock only if this token holds it (compare-and-delete), then wake the waiters
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], '1')
return 1
"""


class _Listener:
    """One pattern subscription per event loop (``released:*``), waking the futures of its loop.

    Its own connection, without a read timeout (it waits for messages); if it fails, waiters
    fall back on the lock's expiry, which bounds every wait anyway.
    """

    def __init__(self, cache: RedisCache, pattern: str) -> None:
        self.cache = cache
        self.pattern = pattern
        self.waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.dead = False
        self._subscribed = asyncio.get_running_loop().create_future()
        self._client: Any = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    def expect(self, channel: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(channel, set()).add(future)
        return future

    def forget(self, channel: str, future: asyncio.Future[None]) -> None:
        waiting = self.waiters.get(channel)
        if waiting is not None:
            waiting.discard(future)
            if not waiting:
                del self.waiters[channel]

    async def ready(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._subscribed), timeout)

    async def _run(self) -> None:
        try:
            self._client = self.cache._new_client(socket_timeout=None)
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            await pubsub.psubscribe(self.pattern)
            self._subscribed.set_result(None)
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None or message.get("type") != "pmessage":
                    continue
                channel = message["channel"]
                channel = channel.decode("utf-8", "surrogateescape") if isinstance(channel, bytes) else channel
                for future in self.waiters.pop(channel, ()):
                    if not future.done():
                        future.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.info("cache lock notifications stopped (%r); waiters rely on lock expiry", error)
        finally:
            self.dead = True
            if not self._subscribed.done():
                self._subscribed.set_exception(ConnectionError("lock notifications unavailable"))
            for waiting in self.waiters.values():
                for future in waiting:
                    if not future.done():
                        future.set_result(None)  # wake them: they look again
            self.waiters.clear()
            if self._client is not None:
                with contextlib.suppress(BaseException):
                    await self._client.aclose(close_connection_pool=True)
                self._client = None

    async def close(self) -> None:
        self._task.cancel()  # its ``finally`` closes the connection
        with contextlib.suppress(BaseException):
            await self._task
