"""aeros: ``from aeros import WebServer``, plus every public name of the installed plugins.

``from aeros import SimpleCache`` works when ``aeros-cache`` is installed; otherwise the
ImportError says which ``pip install 'aeros[...]'`` brings it.
"""

from __future__ import annotations

import importlib
from typing import Any

import aeros_core
from aeros_core import *  # noqa: F403 - the facade re-exports the core's public names
from aeros_core import __version__
from aeros_core.catalog import plugin_for_name

__all__ = [*aeros_core.__all__, "__version__"]


def _plugin_modules() -> list[str]:
    """Top-level modules of the installed plugins (entry-point group ``aeros``), core excluded."""
    from aeros_core.plugins import discover

    modules = []
    for entry_point in discover():
        top = entry_point.value.split(":")[0].split(".")[0]
        if top not in ("aeros_core", "aeros") and top not in modules:
            modules.append(top)
    return modules


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    known = plugin_for_name(name)
    candidates = [known.module] if known else []
    candidates += [m for m in _plugin_modules() if m not in candidates]
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            globals()[name] = value
            return value
    if known:
        raise ImportError(
            f"{name} comes with the {known.module.replace('_', '-')} plugin, which is not installed:"
            f" pip install 'aeros[{known.extra}]'",
            name=name,
        )
    raise AttributeError(f"module 'aeros' has no attribute {name!r}")
