"""The aeros-request plugin: injects ``EasyRequest`` into views that ask for it by annotation."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from aeros_core.hookspecs import hookimpl

from .easy import inject


class _Injector:
    """Wraps each view function at most once; the same view always gets the same wrapper.

    The same wrapper matters: Flask refuses to map an endpoint to a function other than the
    one it already has, and a view stacked under two ``@app.route`` decorators is registered
    twice under one endpoint.
    """

    def __init__(self) -> None:
        self._wrapped: dict[Any, Callable[..., Any]] = {}

    def __call__(self, view: Any) -> Any:
        if view is None:
            return None
        try:
            return self._wrapped[view]
        except KeyError:
            pass
        except TypeError:  # an unhashable callable: wrap it, uncached
            return inject(view)
        wrapped = self._wrapped[view] = inject(view)
        return wrapped


class _InjectingViews(dict[str, Any]):
    """``app.view_functions`` that wraps a view as it is stored (``@app.endpoint``, blueprints).

    Only storing is intercepted; lookups are plain ``dict`` lookups.
    """

    def __init__(self, views: Mapping[str, Any], injector: _Injector) -> None:
        super().__init__()
        self._inject = injector
        self.update(views)

    def __setitem__(self, endpoint: str, view: Any) -> None:
        super().__setitem__(endpoint, self._inject(view))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for endpoint, view in dict(*args, **kwargs).items():
            self[endpoint] = view

    def setdefault(self, endpoint: str, view: Any = None) -> Any:
        if endpoint not in self:
            self[endpoint] = view
        return self[endpoint]


class RequestPlugin:
    """One instance per ``WebServer``.

    ``EasyRequest.params`` (class access) needs no hook: it reads Quart's request context. What
    the plugin adds is injection without a decorator: a view with a parameter annotated
    ``EasyRequest`` is wrapped once, when it is registered, so that the parameter receives an
    instance bound to the request. Nothing runs per request for views that do not ask for it,
    and nothing runs for websockets (Quart calls url-value preprocessors with the ``request``
    proxy during a websocket, so the plugin must not use one).
    """

    def __init__(self) -> None:
        self.app: Optional[Any] = None
        self._inject = _Injector()

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        self.app = app
        app.view_functions = _InjectingViews(app.view_functions, self._inject)
        register = app.add_url_rule
        injector = self._inject

        def add_url_rule(
            rule: str, endpoint: Optional[str] = None, view_func: Any = None, *args: Any, **kwargs: Any
        ) -> Any:
            # Hand Quart the wrapper, so its "same endpoint, other function" check compares wrappers.
            return register(rule, endpoint, injector(view_func), *args, **kwargs)

        add_url_rule.__doc__ = register.__doc__
        app.add_url_rule = add_url_rule
