"""Plugin discovery (entry-point group ``aeros``) and one plugin manager per app."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "aeros"
BUILTIN_DISTRIBUTION = "aeros"
DISABLE_ENV = "AEROS_DISABLE_PLUGINS"
TRACE_ENV = "AEROS_TRACE_PLUGINS"

log = logging.getLogger("aeros.plugins")


class PluginLoadError(ImportError):
    """A plugin could not be loaded; the message names its entry point and distribution."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as listed by ``app.plugins`` and ``aeros plugins``."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    plugin: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
        }


def disabled_names(explicit: Iterable[str] | None) -> set[str]:
    """Names from ``disable_plugins=`` and the comma-separated ``AEROS_DISABLE_PLUGINS``."""
    names = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()}
    names.update(explicit or ())
    return names


def discover() -> list[metadata.EntryPoint]:
    """The entry points of the ``aeros`` group, one per name (first distribution wins)."""
    seen: dict[str, metadata.EntryPoint] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(entry_point.name, entry_point)
    return sorted(seen.values(), key=lambda ep: ep.name)


def _distribution(entry_point: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _describe(entry_point: metadata.EntryPoint) -> str:
    name, version = _distribution(entry_point)
    where = f"distribution {name} {version}" if name else "an unknown distribution"
    return f"aeros plugin {entry_point.name!r} ({entry_point.value}) from {where}"


def instantiate(obj: Any) -> Any:
    """An entry point naming a class gets one fresh instance per app; a module is used as is."""
    return obj() if inspect.isclass(obj) else obj


def load_entry_point(entry_point: metadata.EntryPoint) -> PluginInfo:
    try:
        plugin = instantiate(entry_point.load())
    except Exception as error:
        raise PluginLoadError(f"{_describe(entry_point)} failed to load: {error!r}") from error
    dist, version = _distribution(entry_point)
    return PluginInfo(entry_point.name, dist, version, dist == BUILTIN_DISTRIBUTION, plugin)


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("aeros")
    manager.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV):
        trace = logging.getLogger("aeros.trace")
        manager.add_hookcall_monitoring(
            lambda name, impls, kwargs: trace.warning("hook %s -> %s", name, [i.plugin_name for i in impls]),
            lambda outcome, name, impls, kwargs: None,
        )
    return manager


def register(manager: pluggy.PluginManager, info: PluginInfo) -> None:
    try:
        manager.register(info.plugin, name=info.name)
    except ValueError as error:
        raise PluginLoadError(f"aeros plugin {info.name!r} could not be registered: {error}") from error


def load_plugins(manager: pluggy.PluginManager, disable: set[str], explicit: Iterable[Any] = ()) -> list[PluginInfo]:
    """Load every discovered plugin not disabled, then the explicit ``plugins=[...]`` objects."""
    loaded: list[PluginInfo] = []
    for entry_point in discover():
        dist, _ = _distribution(entry_point)
        if entry_point.name in disable or (dist and dist in disable):
            continue
        info = load_entry_point(entry_point)
        register(manager, info)
        loaded.append(info)
    for obj in explicit:
        plugin = instantiate(obj)
        name = getattr(plugin, "name", None) or getattr(plugin, "__name__", None) or type(plugin).__name__
        if name in disable:
            continue
        info = PluginInfo(str(name), None, None, False, plugin)
        register(manager, info)
        loaded.append(info)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginLoadError(f"aeros plugin {error.plugin!r} implements an unknown hook: {error}") from error
    return loaded
