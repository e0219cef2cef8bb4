"""aeros: ``from aeros import WebServer``, plus every public name of the installed plugins.

``from aeros import SimpleCache`` works when ``aeros-cache`` is installed; otherwise the
ImportError says which ``pip install 'aeros[...]'`` brings it, or, for a plugin that is
installed but fails to import, the error it fails with. ``hasattr(aeros, name)`` is ``False``
for such names, as for any missing attribute.
"""

from __future__ import annotations

import dis
import importlib
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

import aeros_core
from aeros_core import *  # noqa: F403 - the facade re-exports the core's public names
from aeros_core import __version__
from aeros_core.catalog import plugin_for_name

if TYPE_CHECKING:
    # What __getattr__ serves at run time, for type checkers: ``from aeros import SimpleCache`` is
    # aeros_cache.SimpleCache to mypy and pyright (Any when that plugin is not installed). The names
    # of aeros_core.catalog.KNOWN_PLUGINS (tests/test_typing.py keeps them equal); `X as X` marks
    # each an explicit re-export (mypy --strict, pyright).
    from aeros_cache import AppCache as AppCache
    from aeros_cache import CacheBackend as CacheBackend
    from aeros_cache import CacheControl as CacheControl
    from aeros_cache import CacheTypes as CacheTypes
    from aeros_cache import CachingApp as CachingApp
    from aeros_cache import FileSystemCache as FileSystemCache
    from aeros_cache import FilesystemCache as FilesystemCache
    from aeros_cache import RedisCache as RedisCache
    from aeros_cache import SimpleCache as SimpleCache
    from aeros_cache import cache_of as cache_of
    from aeros_compress import Algorithm as Algorithm
    from aeros_compress import Br as Br
    from aeros_compress import Compression as Compression
    from aeros_compress import Gzip as Gzip
    from aeros_compress import MissingCodecError as MissingCodecError
    from aeros_compress import Zstd as Zstd
    from aeros_headers import Cors as Cors
    from aeros_metrics import MetricsConfig as MetricsConfig
    from aeros_metrics import MetricsPlugin as MetricsPlugin
    from aeros_otel import TracingConfig as TracingConfig
    from aeros_otel import TracingPlugin as TracingPlugin
    from aeros_request import EasyRequest as EasyRequest
    from aeros_request import FormBodyError as FormBodyError
    from aeros_request import JSONBodyError as JSONBodyError

__all__ = [*aeros_core.__all__, "__version__"]
_IMPORT_FROM = dis.opmap["IMPORT_FROM"]


def _plugin_modules() -> list[str]:
    """Top-level modules of the installed plugins (entry-point group ``aeros``), core excluded."""
    from aeros_core.plugins import discover

    modules = []
    for entry_point in discover():
        top = entry_point.value.split(":")[0].split(".")[0]
        if top not in ("aeros_core", "aeros") and top not in modules:
            modules.append(top)
    return modules


class PluginImportError(ImportError):
    """``from aeros import X`` where the plugin providing ``X`` is installed but fails to import."""


def _importing_from(frame: FrameType | None) -> bool:
    """Whether ``frame`` is executing ``from aeros import X`` (rather than ``getattr``/``hasattr``).

    ``from ... import`` turns an ``AttributeError`` into a generic "cannot import name", losing
    the reason, while ``hasattr`` only swallows ``AttributeError``: the reason is raised as an
    ``ImportError`` to the first and as an ``AttributeError`` to the others.
    """
    return frame is not None and frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM


def _missing(message: str, name: str, frame: FrameType | None, error: type[ImportError] = ImportError) -> Exception:
    if _importing_from(frame):
        return error(message, name=name)
    return AttributeError(message, name=name, obj=sys.modules[__name__])


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    known = plugin_for_name(name)
    candidates = [known.module] if known else []
    candidates += [m for m in _plugin_modules() if m not in candidates]
    failed: dict[str, BaseException] = {}
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # installed, but something it imports is missing
                failed[module_name] = error
            continue
        except Exception as error:  # installed, and fails to import
            failed[module_name] = error
            continue
        if name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            globals()[name] = value
            return value
    frame = sys._getframe(1)
    if known and known.module in failed:
        cause = failed[known.module]
        raise _missing(
            f"{name} comes with the {known.module.replace('_', '-')} plugin, which is installed but fails to"
            f" import: {type(cause).__name__}: {cause}",
            name,
            frame,
            PluginImportError,
        ) from cause
    if known:
        raise _missing(
            f"{name} comes with the {known.module.replace('_', '-')} plugin, which is not installed:"
            f" pip install 'aeros[{known.extra}]'",
            name,
            frame,
        )
    if failed:
        reasons = "; ".join(f"{module}: {type(cause).__name__}: {cause}" for module, cause in failed.items())
        raise _missing(
            f"module 'aeros' has no attribute {name!r}; installed plugins that fail to import: {reasons}",
            name,
            frame,
            PluginImportError,
        )
    raise AttributeError(f"module 'aeros' has no attribute {name!r}", name=name, obj=sys.modules[__name__])
