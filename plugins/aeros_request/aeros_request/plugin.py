"""The aeros-request plugin: injects ``EasyRequest`` into views that ask for it by annotation."""

from __future__ import annotations

from typing import Any

from aeros_core.hookspecs import hookimpl

from .easy import INJECTING, inject, injected_parameters


class RequestPlugin:
    """Wraps the views that have a parameter annotated ``EasyRequest``, and only those.

    ``EasyRequest.params`` (class access) needs no hook: it reads Quart's request context. What
    the plugin adds is injection without a decorator: when the app's request pipeline is built
    (once, before its first request: when a server starts serving it, or on the first call
    through the test client or an external ASGI server), each view in ``app.view_functions``
    with such a parameter is replaced by a wrapper that passes an instance bound to the request.
    Nothing else of the app is touched: ``add_url_rule``, ``view_functions`` and every other
    view stay Quart's, an app without such views is left exactly as it was, nothing runs per
    request for views that do not ask for it, and nothing runs for websockets.

    Views registered after that point (inside ``before_serving``) are not injected; decorate
    them with ``@EasyRequest()``, which injects by itself.
    """

    @hookimpl
    def aeros_before_request(self, app: Any) -> None:
        wrappers: dict[int, Any] = {}  # one wrapper per view, however many endpoints it serves
        for endpoint, view in list(app.view_functions.items()):
            if getattr(view, INJECTING, False) or not injected_parameters(view):
                continue
            wrapper = wrappers.get(id(view))
            if wrapper is None:
                wrapper = wrappers[id(view)] = inject(view)
            app.view_functions[endpoint] = wrapper
        return None
