"""The aeros core: ``WebServer``, the hook specifications, the plugin manager and the runner."""

from .app import WebServer
from .builtins.request_id import request_id
from .hookspecs import hookimpl, hookspec
from .options import Option, UnknownOptionError
from .pipeline import AfterResponse, AsgiWrapper, BeforeRequest, Stage
from .plugins import PluginInfo, PluginLoadError
from .runner.backend import ServerBackend
from .runner.settings import ServerSettings
from .runner.thread import ThreadedServer

__version__ = "3.0.0"

__all__ = [
    "AfterResponse",
    "AsgiWrapper",
    "BeforeRequest",
    "Option",
    "PluginInfo",
    "PluginLoadError",
    "ServerBackend",
    "ServerSettings",
    "Stage",
    "ThreadedServer",
    "UnknownOptionError",
    "WebServer",
    "hookimpl",
    "hookspec",
    "request_id",
]
