"""Small shared pieces for plugins that observe requests (metrics, tracing, logs).

- :func:`listener`: the hook caller of an event hook, or ``None`` when no plugin implements
  it, looked up once so that an emitter with no listener pays one ``is None`` test.
- :class:`RouteRecorder`: the URL rule (``/users/<int:id>``) a request was routed to, never the
  raw path, so labels and span names stay bounded whatever paths clients send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any, cast

from quart.globals import _cv_request

from .pipeline import AfterResponse, Stage

#: The route a request was matched to, put in the ASGI scope by :meth:`RouteRecorder.step`.
ROUTE_KEY = "aeros.route"
#: The route of a request that matched no URL rule (404, 405, answered before routing).
UNMATCHED = "<unmatched>"
#: How many (method, path) -> route answers a recorder remembers for requests answered at the
#: ASGI edge (a cache hit) without Quart routing them.
EDGE_MEMO_LIMIT = 4096


def listener(app: Any, name: str) -> Callable[..., Any] | None:
    """The caller of the event hook ``name`` for ``app``, or ``None`` when nobody listens.

    Implementations whose plugin object has ``observing = False`` (installed, but switched off
    for this app, like aeros-metrics without ``metrics=``) are left out. Call it once the app
    is built (when a server starts or the pipeline is built), not in ``aeros_app_init``, where
    later plugins have not read their options yet.
    """
    manager = app.plugin_manager
    implementations = getattr(manager.hook, name).get_hookimpls()
    off = [impl.plugin for impl in implementations if getattr(impl.plugin, "observing", True) is False]
    if len(off) == len(implementations):
        return None
    return cast(
        "Callable[..., Any] | None", manager.subset_hook_caller(name, off) if off else getattr(manager.hook, name)
    )


class RouteRecorder:
    """Finds the URL rule of each request, for one app.

    Requests that Quart handles get their rule from :meth:`step`, an after-response step that
    runs for every routed response (views, errors, 404s) and writes the rule into the scope.
    A request answered at the ASGI edge (a cache hit) has no rule in its scope: for a
    successful answer the rule is matched once per (method, path) and remembered (bounded);
    anything else is :data:`UNMATCHED`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.memo: dict[tuple[str, str], str] = {}

    def step(self) -> AfterResponse:
        async def record_route(response: Any) -> Any:
            request = _cv_request.get().request
            rule = request.url_rule
            scope: Any = request.scope
            scope[ROUTE_KEY] = UNMATCHED if rule is None else rule.rule
            return response

        return AfterResponse(Stage.OBSERVE, record_route)

    def route(self, scope: MutableMapping[str, Any], status: int) -> str:
        """The rule of a finished request (``status``: the response's) or :data:`UNMATCHED`."""
        route: str | None = scope.get(ROUTE_KEY)
        if route is not None:
            return route
        if status >= 400:
            return UNMATCHED
        key = (scope.get("method", ""), scope.get("path", ""))
        route = self.memo.get(key)
        if route is None:
            route = self._match(*key)
            if len(self.memo) >= EDGE_MEMO_LIMIT:
                self.memo.pop(next(iter(self.memo)))
            self.memo[key] = route
        return route

    def _match(self, method: str, path: str) -> str:
        try:
            rule, _ = self.app.url_map.bind("localhost").match(path, method, return_rule=True)
        except Exception:  # no rule, a redirect, host matching: nothing to name it by
            return UNMATCHED
        return str(rule.rule)


def worker_event(app: Any, event: str, reason: str, pid: int) -> None:
    """Call every :func:`~aeros_core.hookspecs.aeros_worker_event`; a failing one is logged, never raised.

    Each implementation is called on its own, so one broken plugin cannot keep the others
    from hearing about the event, nor stop the supervisor.
    """
    values = {"app": app, "event": event, "reason": reason, "pid": pid}
    for impl in reversed(app.plugin_manager.hook.aeros_worker_event.get_hookimpls()):  # pluggy's order
        try:
            impl.function(*[values[name] for name in impl.argnames])
        except Exception:
            logging.getLogger("aeros").exception("aeros plugin %r: aeros_worker_event failed", impl.plugin_name)


def exit_reason(exitcode: int | None) -> str:
    """``"killed"`` for a process a signal ended, ``"exited"`` otherwise."""
    return "killed" if exitcode is not None and exitcode < 0 else "exited"
