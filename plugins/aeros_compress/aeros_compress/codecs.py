"""The content codings: ``Gzip``, ``Br`` and ``Zstd``, each one-shot and as a flushing stream.

An algorithm object is configuration (level, ``min_size``, mimetypes) plus two operations:
:meth:`Algorithm.compress` for a whole body and :meth:`Algorithm.stream` for a body sent in
chunks, where every chunk is flushed so the client can decode it at once. Objects are
immutable after construction and safe to share between threads and apps.

gzip needs only the standard library; with the ``speed`` extra installed (python-isal and
zlib-ng) it uses ISA-L for levels 1-3 and zlib-ng for levels 4-9, which the measurements in
the README show to be 2-5x faster at the same or better ratio.
"""

from __future__ import annotations

import fnmatch
import importlib
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, cast

__all__ = ["Algorithm", "Br", "Compression", "Gzip", "MissingCodecError", "Zstd", "DEFAULT_MIMETYPES"]

#: A body whose compression is expected to take longer than this many microseconds is
#: compressed with ``asyncio.to_thread`` instead of on the event loop. From
#: ``bench_codecs.py offload`` (README): an ``asyncio.to_thread`` round trip costs 40-70 µs
#: here; below about 100 µs of work, offloading lowers throughput (up to 3x for 4 KB bodies),
#: from a few hundred µs on it is even or better (the codecs release the GIL, so a second core
#: helps) and it cuts the event loop's worst lag by 3-20x.
OFFLOAD_BUDGET_US = 150

#: Never offload bodies smaller than this: the thread hop would cost more than any codec.
OFFLOAD_MIN_BYTES = 1024

#: One-shot throughput in MB/s (input) on a 60 KB JSON document, one core of the reference
#: machine (``bench_codecs.py codecs``); used only to estimate how long a body takes.
THROUGHPUT: dict[str, dict[int, float]] = {
    "zlib": {0: 1000, 1: 249, 2: 223, 3: 180, 4: 140, 5: 100, 6: 79, 7: 60, 8: 40, 9: 32},
    "isal": {1: 1045, 2: 1045, 3: 982},  # by the Gzip level, mapped as in _ISAL_LEVEL
    "zlib-ng": {1: 786, 2: 579, 3: 400, 4: 196, 5: 170, 6: 148, 7: 110, 8: 90, 9: 72},
    "br": {0: 812, 1: 547, 2: 341, 3: 250, 4: 165, 5: 89, 6: 78, 7: 30, 8: 15, 9: 5, 10: 2, 11: 1},
    "zstd": {
        1: 574,
        2: 570,
        3: 561,
        4: 400,
        5: 250,
        6: 174,
        7: 140,
        8: 110,
        9: 90,
        10: 72,
        11: 50,
        12: 40,
        13: 20,
        14: 15,
        15: 10,
        16: 8,
        17: 6,
        18: 4,
        19: 3,
    },
}
THROUGHPUT["gzip"] = THROUGHPUT["zlib"]


def offload_threshold(codec: str, level: int) -> int:
    """Bytes from which a body is compressed off the event loop, for this codec and level."""
    table = THROUGHPUT[codec]
    mb_per_s = table.get(level, 1000 if level < min(table) else table[max(table)])
    return max(OFFLOAD_MIN_BYTES, int(mb_per_s * OFFLOAD_BUDGET_US))


#: What is compressed when ``mimetypes`` is not given: text, and the structured text formats
#: that are not ``text/*`` (JSON, JavaScript, XML, SVG, fonts without their own compression).
#: ``type/*`` and ``type/*+suffix`` patterns are allowed.
DEFAULT_MIMETYPES: tuple[str, ...] = (
    "text/*",
    "application/json",
    "application/*+json",
    "application/x-ndjson",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "application/xhtml+xml",
    "image/svg+xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/graphql",
    "application/wasm",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "application/x-font-ttf",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
)


class MissingCodecError(ImportError):
    """The package an algorithm needs (brotli, zstandard) is not installed."""


class Stream(Protocol):
    """An incremental compressor: every :meth:`chunk` result is decodable on its own arrival."""

    def chunk(self, data: bytes) -> bytes:
        """Compress ``data`` and flush, so the bytes so far decode to everything given."""

    def finish(self) -> bytes:
        """End the encoded stream (trailer, checksum)."""


class MimeMatcher:
    """Decides whether a mimetype (lower-case, without parameters) is in a list with patterns."""

    __slots__ = ("exact", "patterns", "seen")

    def __init__(self, mimetypes: Iterable[str]) -> None:
        names = [m.strip().lower() for m in mimetypes]
        self.exact = frozenset(n for n in names if "*" not in n)
        self.patterns = tuple(n for n in names if "*" in n)
        self.seen: dict[str, bool] = {}

    def __call__(self, mimetype: str) -> bool:
        known = self.seen.get(mimetype)
        if known is None:
            known = mimetype in self.exact or any(fnmatch.fnmatchcase(mimetype, p) for p in self.patterns)
            if len(self.seen) < 256:  # bounded: content types come from the app, not from clients
                self.seen[mimetype] = known
        return known


def _require(module: str, owner: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingCodecError(
            f"{owner}() needs the {module.split('.')[0]} package, which is not installed: pip install 'aeros[{extra}]'"
        ) from error


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


class Algorithm:
    """Base of the content codings. Subclasses set ``encoding`` and the level range.

    Args:
        level: compression level of the codec (its own scale).
        min_size: bodies with a known length below this many bytes are sent as they are.
        mimetypes: the content types to compress; ``None`` means :data:`DEFAULT_MIMETYPES`.
            Entries may be patterns: ``"text/*"``, ``"application/*+json"``.
    """

    encoding: ClassVar[str] = ""  #: the Content-Encoding token
    min_level: ClassVar[int] = 0
    max_level: ClassVar[int] = 9

    def __init__(self, level: int, min_size: int = 500, mimetypes: Iterable[str] | None = None) -> None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError(f"{type(self).__name__} level must be an int, got {level!r}")
        if not self.min_level <= level <= self.max_level:
            raise ValueError(
                f"{type(self).__name__} level must be within {self.min_level}..{self.max_level}, got {level}"
            )
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
            raise ValueError(f"min_size must be an int >= 0, got {min_size!r}")
        if isinstance(mimetypes, str):
            mimetypes = [mimetypes]
        self.level = level
        self.min_size = min_size
        self.mimetypes: tuple[str, ...] = DEFAULT_MIMETYPES if mimetypes is None else tuple(mimetypes)
        self.matches = MimeMatcher(self.mimetypes)
        #: identifies the bytes this object produces, for caches of compressed variants
        self.variant_key: tuple[Any, ...] = (self.encoding, level)
        #: bodies (and stream chunks) at least this large are compressed in a worker thread
        self.offload_threshold = offload_threshold(self.encoding, level)

    def compress(self, data: bytes) -> bytes:
        """The whole body, encoded."""
        raise NotImplementedError

    def stream(self) -> Stream:
        """A new incremental compressor that flushes every chunk."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level}, min_size={self.min_size})"


# --- gzip ---------------------------------------------------------------------------------

#: ISA-L has levels 0-3; these are the ones that match zlib's 1-3 in ratio (README table).
_ISAL_LEVEL = {1: 1, 2: 1, 3: 2}


class _DeflateStream:
    __slots__ = ("_compressor", "_sync")

    def __init__(self, module: Any, level: int) -> None:
        self._compressor = module.compressobj(level, module.DEFLATED, 31)
        self._sync = module.Z_SYNC_FLUSH

    def chunk(self, data: bytes) -> bytes:
        c = self._compressor
        return cast("bytes", c.compress(data) + c.flush(self._sync))

    def finish(self) -> bytes:
        return cast("bytes", self._compressor.flush())


class Gzip(Algorithm):
    """gzip (RFC 1952). Needs nothing beyond the standard library.

    Args:
        level: 1 (fastest) to 9 (smallest); 0 stores without compressing.
        min_size: see :class:`Algorithm`.
        mimetypes: see :class:`Algorithm`.
        backend: ``"zlib"``, ``"isal"``, ``"zlib-ng"`` or ``None`` for the fastest installed
            one for this level (``isal`` for 1-3, ``zlib-ng`` for 4-9, else the standard
            library's ``zlib``). The output is gzip whichever backend writes it.
    """

    encoding = "gzip"

    def __init__(
        self,
        level: int = 2,
        min_size: int = 500,
        mimetypes: Iterable[str] | None = None,
        *,
        backend: str | None = None,
    ) -> None:
        super().__init__(level, min_size, mimetypes)
        self.backend, self._module, self._level = self._pick_backend(backend, level)
        self.variant_key = ("gzip", level, self.backend)
        self.offload_threshold = offload_threshold(self.backend, level)

    @staticmethod
    def _pick_backend(backend: str | None, level: int) -> tuple[str, Any, int]:
        if backend not in (None, "zlib", "isal", "zlib-ng"):
            raise ValueError(f"unknown gzip backend {backend!r}; use 'zlib', 'isal' or 'zlib-ng'")
        if backend == "isal" or (backend is None and level in _ISAL_LEVEL):
            if backend == "isal" and level not in _ISAL_LEVEL:
                raise ValueError(f"the isal backend serves levels 1-3, not {level}")
            module = (
                _require("isal.isal_zlib", "Gzip(backend='isal')", "speed") if backend else _optional("isal.isal_zlib")
            )
            if module is not None:
                return "isal", module, _ISAL_LEVEL[level]
        if backend == "zlib-ng" or (backend is None and level > 0):
            module = (
                _require("zlib_ng.zlib_ng", "Gzip(backend='zlib-ng')", "speed")
                if backend
                else _optional("zlib_ng.zlib_ng")
            )
            if module is not None:
                return "zlib-ng", module, level
        return "zlib", zlib, level

    def compress(self, data: bytes) -> bytes:
        return cast("bytes", self._module.compress(data, self._level, 31))

    def stream(self) -> Stream:
        return _DeflateStream(self._module, self._level)

    def __repr__(self) -> str:
        return f"Gzip(level={self.level}, min_size={self.min_size}, backend={self.backend!r})"


class Compression(Gzip):
    """The original Aeros name of the compression setting; it is :class:`Gzip`. Deprecated."""

    def __init__(self, level: int = 2, min_size: int = 500, mimetypes: Iterable[str] | None = None) -> None:
        warnings.warn("Compression() is deprecated; use Gzip()", DeprecationWarning, stacklevel=2)
        super().__init__(level, min_size, mimetypes)


# --- brotli -------------------------------------------------------------------------------


class _BrotliStream:
    __slots__ = ("_compressor",)

    def __init__(self, brotli: Any, quality: int) -> None:
        self._compressor = brotli.Compressor(quality=quality)

    def chunk(self, data: bytes) -> bytes:
        c = self._compressor
        return cast("bytes", c.process(data) + c.flush())

    def finish(self) -> bytes:
        return cast("bytes", self._compressor.finish())


class Br(Algorithm):
    """Brotli (RFC 7932), ``Content-Encoding: br``. Needs ``pip install 'aeros[brotli]'``.

    Args:
        level: brotli quality, 0 (fastest) to 11 (smallest, about 50x slower than 4).
        min_size: see :class:`Algorithm`.
        mimetypes: see :class:`Algorithm`.
    """

    encoding = "br"
    max_level = 11

    def __init__(self, level: int = 4, min_size: int = 500, mimetypes: Iterable[str] | None = None) -> None:
        super().__init__(level, min_size, mimetypes)
        self._brotli = _require("brotli", "Br", "brotli")

    def compress(self, data: bytes) -> bytes:
        return cast("bytes", self._brotli.compress(data, quality=self.level))

    def stream(self) -> Stream:
        return _BrotliStream(self._brotli, self.level)


# --- zstd ---------------------------------------------------------------------------------


class _ZstdStream:
    __slots__ = ("_compressor", "_block")

    def __init__(self, zstandard: Any, compressor: Any) -> None:
        self._compressor = compressor.compressobj()
        self._block = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def chunk(self, data: bytes) -> bytes:
        c = self._compressor
        return cast("bytes", c.compress(data) + c.flush(self._block))

    def finish(self) -> bytes:
        return cast("bytes", self._compressor.flush())


class Zstd(Algorithm):
    """Zstandard (RFC 8878), ``Content-Encoding: zstd``. Needs ``pip install 'aeros[zstd]'``.

    Args:
        level: -7 (fastest) to 19 (smallest). Levels above 19 need windows larger than the
            8 MB browsers accept for ``zstd`` content coding, so they are refused.
        min_size: see :class:`Algorithm`.
        mimetypes: see :class:`Algorithm`.
    """

    encoding = "zstd"
    min_level = -7
    max_level = 19

    def __init__(self, level: int = 3, min_size: int = 500, mimetypes: Iterable[str] | None = None) -> None:
        super().__init__(level, min_size, mimetypes)
        self._zstandard = _require("zstandard", "Zstd", "zstd")
        # A ZstdCompressor must not be used by two threads at once; bodies compressed off the
        # event loop run in worker threads, so each thread gets its own.
        self._local = threading.local()

    def _compressor(self) -> Any:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = self._zstandard.ZstdCompressor(level=self.level)
        return compressor

    def compress(self, data: bytes) -> bytes:
        return cast("bytes", self._compressor().compress(data))

    def stream(self) -> Stream:
        return _ZstdStream(self._zstandard, self._zstandard.ZstdCompressor(level=self.level))


ALGORITHMS: dict[str, Callable[..., Algorithm]] = {"gzip": Gzip, "br": Br, "zstd": Zstd}
