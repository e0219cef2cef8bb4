"""The ``compression=`` keyword, the algorithm objects, and the errors for missing packages."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from aeros import WebServer


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_public_names_from_aeros() -> None:
    import aeros_compress

    import aeros

    for name in ("Gzip", "Br", "Zstd", "Compression", "Algorithm", "MissingCodecError"):
        assert name in aeros_compress.__all__
        assert getattr(aeros, name) is getattr(aeros_compress, name)


@pytest.mark.parametrize("name,module,extra", [("Br", "brotli", "brotli"), ("Zstd", "zstandard", "zstd")])
def test_missing_package_names_the_extra(name: str, module: str, extra: str) -> None:
    result = run_python(
        f"""
        import sys
        sys.modules[{module!r}] = None  # as if the package were not installed
        from aeros import {name}, Gzip, WebServer
        app = WebServer("probe", compression=Gzip())  # gzip needs nothing else
        try:
            {name}()
        except ImportError as error:
            print("ERROR:", error)
        else:
            print("NO ERROR")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR:" in result.stdout
    assert f"pip install 'aeros[{extra}]'" in result.stdout
    assert f"{name}()" in result.stdout


def test_gzip_needs_only_the_standard_library() -> None:
    result = run_python(
        """
        import sys, gzip
        for name in ("brotli", "zstandard", "isal", "isal.isal_zlib", "zlib_ng", "zlib_ng.zlib_ng"):
            sys.modules[name] = None
        from aeros import Gzip
        g = Gzip()
        assert g.backend == "zlib", g.backend
        assert gzip.decompress(g.compress(b"x" * 1000)) == b"x" * 1000
        print("OK")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    "value,error",
    [
        ("gzip", TypeError),
        (42, TypeError),
        (["gzip"], TypeError),
        ("Gzip-class", TypeError),
        ("twice", ValueError),
    ],
)
def test_bad_compression_values(value: Any, error: type[Exception]) -> None:
    from aeros import Gzip

    if value == "Gzip-class":
        value = Gzip
    elif value == "twice":
        value = [Gzip(), Gzip(level=6)]
    with pytest.raises(error):
        WebServer(__name__, compression=value, disable_plugins=["hello"])


def test_unknown_keyword_hint() -> None:
    from aeros import UnknownOptionError

    with pytest.raises(UnknownOptionError, match="compression"):
        WebServer(__name__, compresion=None, disable_plugins=["hello"])


def test_levels_are_checked() -> None:
    from aeros import Br, Gzip, Zstd

    with pytest.raises(ValueError):
        Gzip(level=10)
    with pytest.raises(ValueError):
        Br(level=12)
    with pytest.raises(ValueError):
        Zstd(level=22)
    with pytest.raises(ValueError):
        Gzip(min_size=-1)
    with pytest.raises(ValueError):
        Gzip(backend="lzma")
    assert (Gzip().level, Br().level, Zstd().level) == (2, 4, 3)
    assert Gzip().min_size == Br().min_size == 500


@pytest.mark.parametrize("backend", ["zlib", "isal", "zlib-ng"])
def test_gzip_backends_write_gzip(backend: str) -> None:
    pytest.importorskip({"zlib": "zlib", "isal": "isal", "zlib-ng": "zlib_ng"}[backend])
    from aeros import Gzip

    data = b"the same bytes whichever backend " * 300
    for level in (1, 2, 3):
        algorithm = Gzip(level=level, backend=backend)
        assert gzip.decompress(algorithm.compress(data)) == data
        stream = algorithm.stream()
        encoded = stream.chunk(data[:5000]) + stream.chunk(data[5000:]) + stream.finish()
        assert gzip.decompress(encoded) == data


def test_compression_is_the_deprecated_gzip() -> None:
    from aeros import Compression, Gzip

    with pytest.warns(DeprecationWarning, match="Gzip"):
        old = Compression(level=5)
    assert isinstance(old, Gzip) and old.encoding == "gzip" and old.level == 5


def test_mimetype_patterns() -> None:
    from aeros import Gzip

    matches = Gzip().matches
    for mimetype in (
        "text/html",
        "text/event-stream",
        "application/json",
        "application/ld+json",
        "application/atom+xml",
        "image/svg+xml",
        "application/javascript",
    ):
        assert matches(mimetype), mimetype
    for mimetype in ("image/png", "application/octet-stream", "video/mp4", "application/zip", "font/woff2"):
        assert not matches(mimetype), mimetype
    assert Gzip(mimetypes="text/csv").mimetypes == ("text/csv",)
