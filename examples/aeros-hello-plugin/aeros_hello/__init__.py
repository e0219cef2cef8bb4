"""aeros-hello-plugin: the template for third-party aeros plugins.

Installed, it is discovered through the ``aeros`` entry-point group; every ``WebServer`` then
accepts ``hello_greeting=``. An app given a greeting serves ``/hello-plugin/<name>``, answers
``/hello-plugin/ping`` at the ASGI edge and adds an ``X-Hello`` header to every routed response.
"""

from .plugin import PING_PATH, HelloPlugin

__all__ = ["PING_PATH", "HelloPlugin"]
