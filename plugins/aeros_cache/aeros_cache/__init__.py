"""aeros-cache: a safe, async server-side response cache and ``Cache-Control`` for aeros.

``WebServer(__name__, cache=SimpleCache())`` turns the plugin on; ``@app.cache(timeout=60)``
caches a view. See the README of the distribution for every option.
"""

from .backends import CacheBackend, FileSystemCache, FilesystemCache, RedisCache, SimpleCache
from .control import CacheControl, CacheTypes
from .typing import AppCache, CachingApp, cache_of

__all__ = [
    "AppCache",
    "CacheBackend",
    "CacheControl",
    "CacheTypes",
    "CachingApp",
    "FileSystemCache",
    "FilesystemCache",
    "RedisCache",
    "SimpleCache",
    "cache_of",
]
