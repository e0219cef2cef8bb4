"""``fast_json``: JSON responses serialised with orjson when it is installed (``aeros[speed]``).

The provider keeps Quart's output byte for byte wherever it can and hands a call back to
Quart's own provider (the standard library's :mod:`json`) whenever orjson would write
something else: non-ASCII text while ``ensure_ascii`` is on, indented output (debug mode,
``compact=False``), keyword arguments it does not know, and anything orjson refuses (integers
beyond 64 bits, non-``str`` dict keys, objects that ``default`` cannot turn into JSON; the
stdlib then raises Quart's ``TypeError`` as before). Reading JSON stays the stdlib's.

Known differences from Quart's provider, all of them still the same numbers in valid JSON:

- ``NaN``, ``Infinity`` and ``-Infinity`` are written as ``null`` (the stdlib writes the
  tokens ``NaN``/``Infinity``, which are not JSON).
- floats below 1e-4 in magnitude are spelled orjson's way: ``1e-7``, ``0.00001`` where the
  stdlib writes ``1e-07``, ``1e-05``.
- an :class:`enum.Enum` member that is neither an ``int`` nor a ``str`` is written as its value
  (Quart raises ``TypeError``); a ``uuid.UUID`` is always written as ``str(uuid)``, even with a
  custom ``default``.

Set ``WebServer(..., fast_json=False)`` (or ``disable_plugins=["fast_json"]``) to keep Quart's
provider.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from quart.json.provider import DefaultJSONProvider
from quart.wrappers import Response

from ..hookspecs import hookimpl
from ..options import Option
from ..request_path import content_type_for, plain_response

#: orjson 3.11.7 writes ``1e+16`` like the stdlib; older versions write ``1e16``.
MIN_ORJSON_VERSION = (3, 11, 7)
COMPACT = (",", ":")
_HANDLED_KEYWORDS = frozenset({"separators", "sort_keys", "ensure_ascii", "default"})


def _version(text: str) -> tuple[int, ...]:
    """``"3.11.7"`` -> ``(3, 11, 7)``; a part's leading digits only (``"7rc1"`` -> 7)."""
    numbers = []
    for part in text.split(".")[:3]:
        match = re.match(r"\d+", part)
        numbers.append(int(match.group()) if match else 0)
    return tuple(numbers)


def load_orjson() -> ModuleType | None:
    """The ``orjson`` module if it is installed and recent enough, else ``None``."""
    try:
        module = importlib.import_module("orjson")
    except ImportError:
        return None
    if _version(str(getattr(module, "__version__", "0"))) < MIN_ORJSON_VERSION:
        return None
    return module


_orjson = load_orjson()


class FastJSONProvider(DefaultJSONProvider):
    """Quart's :class:`~quart.json.provider.DefaultJSONProvider`, serialising with orjson.

    Honours ``sort_keys``, ``ensure_ascii``, ``default``, ``compact`` and ``mimetype`` as Quart
    does; see the module documentation for when it falls back to the stdlib and for the few
    outputs that differ (``NaN`` is written as ``null``).
    """

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        if _orjson is None:
            raise RuntimeError("FastJSONProvider needs orjson>=3.11.7: pip install 'aeros[speed]'")
        self._orjson = _orjson
        self._options = (
            _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS,
            _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_SORT_KEYS,
        )

    def encode(self, obj: Any, sort_keys: bool, ensure_ascii: bool, default: Callable[[Any], Any]) -> bytes | None:
        """Compact JSON bytes as the stdlib would write them, or ``None`` to use the stdlib."""
        try:
            body: bytes = self._orjson.dumps(obj, default=default, option=self._options[bool(sort_keys)])
        except self._orjson.JSONEncodeError:
            return None
        # The stdlib's ensure_ascii escapes everything outside printable ASCII, DEL included.
        if ensure_ascii and (not body.isascii() or b"\x7f" in body):
            return None
        return body

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """As Quart's; orjson serialises when the call asks for compact separators."""
        if kwargs.get("separators") == COMPACT and kwargs.keys() <= _HANDLED_KEYWORDS:
            body = self.encode(
                obj,
                kwargs.get("sort_keys", self.sort_keys),
                kwargs.get("ensure_ascii", self.ensure_ascii),
                kwargs.get("default", self.default),
            )
            if body is not None:
                return body.decode()
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        """As Quart's ``jsonify``/dict response, with the body built from orjson's bytes."""
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        response_class: Any = self._app.response_class  # Quart's Response: (body, status, ...)
        body = self.encode(obj, self.sort_keys, self.ensure_ascii, self.default)
        if body is None:
            body = f"{DefaultJSONProvider.dumps(self, obj, separators=COMPACT)}\n".encode()
        else:
            body += b"\n"
        if response_class is Response:
            return plain_response(body, content_type_for(self.mimetype))
        return response_class(body, mimetype=self.mimetype)


class FastJsonPlugin:
    """Installs :class:`FastJSONProvider` as ``app.json`` when orjson is available."""

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [Option("fast_json", True, "serialise JSON responses with orjson when it is installed (aeros[speed])")]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        # Leave a provider the application chose (json_provider_class) alone.
        if not options["fast_json"] or _orjson is None or type(app.json) is not DefaultJSONProvider:
            return
        app.json = FastJSONProvider(app)
