"""``EasyRequest``: one uniform accessor for the current request, safe under concurrency.

The original Aeros copied the request into module globals in a decorator, so two concurrent
requests could read each other's values. Here nothing is copied: every attribute is read from
Quart's request context (a context variable), or, for an injected instance, from the request
object it was made for.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

from quart import has_request_context
from quart import request as _quart_request
from werkzeug.datastructures import Headers, MultiDict
from werkzeug.exceptions import BadRequest, RequestTimeout

from aeros_core.request import JSONBodyInvalid, load_json_body

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Marks a view that already injects ``EasyRequest`` parameters itself.
INJECTING = "_aeros_easyrequest_injects"
_JSON_CACHE = "_aeros_easyrequest_json"
_MISSING = object()


class JSONBodyError(BadRequest):
    """``await request.json`` on a body that is not JSON: a 400 whose message says why."""


def current_request() -> Any:
    """The ``quart.Request`` being handled; ``RuntimeError`` outside a request."""
    if not has_request_context():
        raise RuntimeError(
            "EasyRequest was used outside a request: read it inside a view (or a function the view calls)"
        )
    return _quart_request._get_current_object()  # type: ignore[attr-defined]


async def _read_json(request: Any) -> Any:
    cached = getattr(request, _JSON_CACHE, _MISSING)
    if cached is not _MISSING:
        return cached
    if not request.is_json:
        raise JSONBodyError(
            "The request body must be JSON sent with 'Content-Type: application/json';"
            f" this request has Content-Type {request.content_type or 'none'!r}."
        )
    data = await request.get_data()
    if not data.strip():
        raise JSONBodyError("The request body is empty; JSON was expected.")
    try:
        value = load_json_body(data, request.json_module.loads, request.mimetype_params.get("charset"))
    except JSONBodyInvalid as error:
        raise JSONBodyError(str(error)) from None
    setattr(request, _JSON_CACHE, value)
    return value


class FormBodyError(BadRequest):
    """``await request.form``/``files`` on a malformed form body: a 400 whose message says why."""


async def _load_form(request: Any) -> None:
    """Parse the form body as Quart does, but refuse a malformed one (Quart's parser is silent
    and answers an empty form) with :class:`FormBodyError`. Quart's ``request.form`` then sees
    the same result: the body is read once."""
    if request._form is not None:
        return
    parser = request.make_form_data_parser()
    parser.silent = False
    async with request._parsing_lock:
        if request._form is not None:
            return
        try:
            request._form, request._files = await asyncio.wait_for(
                parser.parse(request.body, request.mimetype, request.content_length, request.mimetype_params),
                timeout=request.body_timeout,
            )
        except asyncio.TimeoutError:
            raise RequestTimeout() from None
        except UnicodeDecodeError as error:
            raise FormBodyError(
                f"The {request.mimetype} request body is not valid UTF-8: byte"
                f" 0x{error.object[error.start]:02x} at position {error.start} ({error.reason})."
            ) from None
        except ValueError as error:
            raise FormBodyError(f"The {request.mimetype} request body is malformed: {error}.") from None


async def _read_form(request: Any) -> MultiDict[str, Any]:
    await _load_form(request)
    return cast("MultiDict[str, Any]", await request.form)


async def _read_files(request: Any) -> MultiDict[str, Any]:
    await _load_form(request)
    return cast("MultiDict[str, Any]", await request.files)


class RequestField(Generic[T]):
    """An ``EasyRequest`` attribute: read on the class, it reads the current request; read on an
    instance, the instance's request. (A descriptor, so type checkers see ``T`` both ways.)"""

    def __init__(self, read: Callable[[Any], T], doc: str) -> None:
        self._read = read
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: EasyRequest | None, owner: type | None = None) -> T:
        request = current_request() if instance is None else instance._get()
        return self._read(request)

    def __set__(self, instance: EasyRequest, value: Any) -> None:
        raise AttributeError(f"EasyRequest.{self.name} is read-only")


class EasyRequest:
    """The current request with one syntax: plain attributes, and ``await`` for the body.

    ``params`` (query string), ``headers`` and ``cookies`` are plain attributes (Quart's
    ``MultiDict``/``Headers``); ``form``, ``json`` and ``files`` need ``await`` because they read
    the body. ``await request.json`` on a body that is not JSON, or without
    ``Content-Type: application/json``, answers 400 with a message saying which.

    Three ways to use it, all request-scoped (concurrent requests never see each other's values):

    - inject: ``async def view(request: EasyRequest)`` — any parameter annotated ``EasyRequest``
      receives an instance bound to the request (the aeros-request plugin does this for every
      route; ``@EasyRequest()`` does it where the plugin is not loaded);
    - the original Aeros style: ``EasyRequest.params`` read on the class, inside a view;
    - an unbound instance, ``EasyRequest()``, which reads whatever request is current.

    Args:
        request: the ``quart.Request`` to read; ``None`` reads the current request on each access.
    """

    __slots__ = ("_request",)

    params: RequestField[MultiDict[str, Any]] = RequestField(
        lambda r: r.args, "The query-string parameters (``request.args``)."
    )
    headers: RequestField[Headers] = RequestField(lambda r: r.headers, "The request headers, case-insensitive.")
    cookies: RequestField[MultiDict[str, Any]] = RequestField(lambda r: r.cookies, "The request cookies.")
    form: RequestField[Awaitable[MultiDict[str, Any]]] = RequestField(
        _read_form, "``await`` it: the form fields of a urlencoded or multipart body."
    )
    json: RequestField[Awaitable[Any]] = RequestField(
        _read_json, "``await`` it: the JSON body; 400 (``JSONBodyError``) if the body is not JSON."
    )
    files: RequestField[Awaitable[MultiDict[str, Any]]] = RequestField(
        _read_files, "``await`` it: uploaded files of a multipart body (``FileStorage`` values)."
    )
    quart_request: RequestField[Any] = RequestField(lambda r: r, "The underlying ``quart.Request``.")

    def __init__(self, request: Any | None = None) -> None:
        self._request = request

    def _get(self) -> Any:
        return self._request if self._request is not None else current_request()

    def __call__(self, view: F) -> F:
        """Decorate a view (the original Aeros way); injects parameters annotated ``EasyRequest``.

        Without such parameters the view is returned unchanged: ``EasyRequest.params`` works in
        any view without the decorator, which is kept so original Aeros code runs as it is.
        """
        return inject(view)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "<EasyRequest bound>" if self._request is not None else "<EasyRequest current>"


def injected_parameters(view: Callable[..., Any]) -> tuple[str, ...]:
    """Names of ``view``'s parameters annotated ``EasyRequest`` (string annotations included)."""
    try:
        signature = inspect.signature(view)
    except (TypeError, ValueError):
        return ()
    try:
        hints = typing.get_type_hints(view)
    except Exception:  # unresolvable forward references: fall back to the raw annotations
        hints = {}
    names = []
    for name, parameter in signature.parameters.items():
        annotation = hints.get(name, parameter.annotation)
        if annotation is EasyRequest or annotation in ("EasyRequest", "aeros.EasyRequest"):
            names.append(name)
    return tuple(names)


def inject(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``view`` so its ``EasyRequest`` parameters get an instance bound to the request.

    Sync views stay sync (Quart runs them in a thread, where the request context is copied).
    A view without such parameters, or one already wrapped, is returned unchanged.
    """
    if getattr(view, INJECTING, False):
        return view
    names = injected_parameters(view)
    if not names:
        return view

    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_view(*args: Any, **kwargs: Any) -> Any:
            request = EasyRequest(current_request())
            for name in names:
                kwargs.setdefault(name, request)
            return await view(*args, **kwargs)

        wrapped: Callable[..., Any] = async_view
    else:

        @functools.wraps(view)
        def sync_view(*args: Any, **kwargs: Any) -> Any:
            request = EasyRequest(current_request())
            for name in names:
                kwargs.setdefault(name, request)
            return view(*args, **kwargs)

        wrapped = sync_view
    setattr(wrapped, INJECTING, True)
    return wrapped
