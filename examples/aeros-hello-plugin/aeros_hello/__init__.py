"""aeros-hello-plugin: the template for third-party aeros plugins.

Installed, it is discovered through the ``aeros`` entry-point group; every ``WebServer`` then
accepts ``hello_greeting=``, serves ``/hello-plugin/<name>``, answers ``/hello-plugin/ping`` at
the ASGI edge and adds an ``X-Hello`` header to every routed response.
"""

from .plugin import DEFAULT_GREETING, PING_PATH, HelloPlugin

__all__ = ["DEFAULT_GREETING", "PING_PATH", "HelloPlugin"]
