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
from typing import Any

import aeros_core
from aeros_core import *  # noqa: F403 - the facade re-exports the core's public names
from aeros_core import __version__
from aeros_core.catalog import plugin_for_name

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
