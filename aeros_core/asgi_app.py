"""``app.asgi_app = Middleware(app.asgi_app)``, Quart's middleware idiom, honoured at any time.

A server started by aeros serves an entry built once, before the lifespan startup, around
the ``asgi_app`` of that moment: a replacement made later, in ``@app.before_serving``, was
silently ignored. Now:

- :attr:`WebServer.asgi_app <aeros_core.app.WebServer.asgi_app>` is :class:`ReplaceableASGIApp`:
  reading it gives the replacement if there is one, else Quart's dispatch (what middleware wraps);
- the entry is built around :func:`innermost` — Quart's own bound ``asgi_app``, exactly as
  before, while nothing is replaced (no cost per request), or the replacement;
- replacing it after the entry was built points the app's instance-level ``asgi_http_class``
  and ``asgi_websocket_class`` (which Quart's ``asgi_app`` reads on every call) at the
  replacement; the middleware's own inner call goes to :func:`dispatch`, which reads the
  handler classes from the app's class, so it does not loop back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import MethodType
from typing import Any

from quart import Quart

_REPLACED = "_aeros_asgi_app"


async def dispatch(app: Any, scope: Any, receive: Any, send: Any) -> None:
    """Quart's ``asgi_app``, with the handler classes read from the app's class."""
    cls = type(app)
    if scope["type"] == "http":
        handler = cls.asgi_http_class(app, scope)
    elif scope["type"] == "websocket":
        handler = cls.asgi_websocket_class(app, scope)
    elif scope["type"] == "lifespan":
        handler = cls.asgi_lifespan_class(app, scope)
    else:
        raise RuntimeError("ASGI Scope type is unknown")
    await handler(receive, send)


def _to_replacement(app: Any, scope: Any) -> Callable[..., Any]:
    """Stands in for ``asgi_http_class``/``asgi_websocket_class``: the call goes to the replacement."""
    return partial(app.__dict__[_REPLACED], scope)


def innermost(app: Any) -> Callable[..., Any]:
    """What an entry is built around: the replacement, or Quart's bound ``asgi_app``."""
    replaced = app.__dict__.get(_REPLACED)
    return replaced if replaced is not None else MethodType(type(app).asgi_app, app)  # Quart's, or an override


class ReplaceableASGIApp:
    """``WebServer.asgi_app``: Quart's ASGI dispatch; ``app.asgi_app = middleware(app.asgi_app)``
    works as in Quart, also after a server started (``@app.before_serving``)."""

    def __get__(self, app: Any, owner: type | None = None) -> Any:
        if app is None:
            return Quart.asgi_app
        replaced = app.__dict__.get(_REPLACED)
        return replaced if replaced is not None else MethodType(dispatch, app)

    def __set__(self, app: Any, value: Callable[..., Any]) -> None:
        app.__dict__[_REPLACED] = value
        # entries already built call Quart's asgi_app, which asks these for the handler
        app.asgi_http_class = app.asgi_websocket_class = _to_replacement

    def __delete__(self, app: Any) -> None:
        app.__dict__.pop(_REPLACED, None)
        for name in ("asgi_http_class", "asgi_websocket_class"):
            app.__dict__.pop(name, None)
