"""The aeros-request plugin: injects ``EasyRequest`` into views that ask for it by annotation."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from aeros_core.hookspecs import hookimpl

from .easy import inject


class RequestPlugin:
    """One instance per ``WebServer``.

    ``EasyRequest.params`` (class access) needs no hook: it reads Quart's request context. What
    the plugin adds is injection without a decorator: the first time a request reaches an
    endpoint, a view with a parameter annotated ``EasyRequest`` is wrapped (once) so that the
    parameter receives an instance bound to the request. Later requests pay one set lookup.
    """

    def __init__(self) -> None:
        self.app: Optional[Any] = None
        self._checked: set[Optional[str]] = set()

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        self.app = app
        app.url_value_preprocessor(self._prepare_endpoint)

    def _prepare_endpoint(self, endpoint: Optional[str], values: Any) -> None:
        if endpoint in self._checked or self.app is None:
            return
        views = self.app.view_functions
        view = views.get(endpoint)
        if view is not None:
            wrapped = inject(view)
            if wrapped is not view:
                views[endpoint] = wrapped
        self._checked.add(endpoint)
