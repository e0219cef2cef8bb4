"""Cache backends: memory (``SimpleCache``), files (``FileSystemCache``) and Redis (``RedisCache``).

A backend stores :class:`~aeros_cache.entry.Entry` objects under string keys. Every method is
``async`` and never blocks the event loop: file I/O runs in ``asyncio.to_thread``, Redis goes
through ``redis.asyncio``. Backends raise on failure; the plugin turns failures into misses.
"""

from .base import CacheBackend
from .filesystem import FileSystemCache, FilesystemCache
from .redis import RedisCache
from .simple import SimpleCache

__all__ = ["CacheBackend", "SimpleCache", "FileSystemCache", "FilesystemCache", "RedisCache"]
