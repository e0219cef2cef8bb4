"""Reading a JSON request body: a malformed body is the client's error (400), never a 500.

Quart decodes the body as UTF-8 before it parses, outside the ``try`` that turns a parse error
into a 400, and the standard library's parser raises ``RecursionError`` (not ``ValueError``)
for deep nesting; so an invalid UTF-8 body, a UTF-16 body, a ``charset=latin-1`` body or an
array nested ~1000 levels deep answered 500 with a traceback in the log.

The rule, in :func:`load_json_body` (``await request.get_json()``/``request.json`` of a
``WebServer`` and ``await EasyRequest.json`` both use it):

- the encoding is read from the bytes, as Flask (and :func:`json.loads` on bytes) reads it:
  UTF-8, with a byte-order mark ignored (RFC 8259 §8.1 allows that), or UTF-16/UTF-32,
  recognised by their byte-order mark or by the zero bytes around the first characters.
  RFC 8259 asks senders for UTF-8; accepting the other two costs nothing and is what a Flask
  user gets.
- the ``charset`` parameter of the Content-Type is ignored: ``application/json`` defines none
  (RFC 8259 §11). A ``charset=latin-1`` body with non-ASCII latin-1 bytes is not UTF-8: 400.
- nesting deeper than the parser's stack allows (about 1000 levels with the standard
  library) is a 400, as is anything else the JSON parser refuses (numbers over 4300 digits...).
- a body over ``MAX_CONTENT_LENGTH`` stays Quart's 413.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from quart.wrappers import Request as QuartRequest


class JSONBodyInvalid(ValueError):
    """A request body that is not JSON; ``str(error)`` says why, for the client."""


def load_json_body(data: bytes, loads: Callable[[str], Any], charset: str | None = None) -> Any:
    """Parse a request body as JSON with ``loads``; :class:`JSONBodyInvalid` if it is not JSON."""
    encoding = json.detect_encoding(data)  # UTF-8, or UTF-16/32 by BOM or zero bytes
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        stated = f" (the Content-Type's charset={charset} is ignored: JSON is UTF-8)" if charset else ""
        raise JSONBodyInvalid(
            f"The request body is not valid {encoding.upper().removesuffix('-SIG')}{stated}:"
            f" byte 0x{error.object[error.start]:02x} at position {error.start} ({error.reason})."
        ) from None
    try:
        return loads(text)
    except RecursionError:
        raise JSONBodyInvalid("The request body is JSON nested too deeply to be read.") from None
    except ValueError as error:
        raise JSONBodyInvalid(f"The request body is not valid JSON: {error}.") from None


class Request(QuartRequest):
    """Quart's request, whose ``get_json`` answers 400 for every malformed body (see the module).

    ``force``, ``silent``, ``cache`` and :meth:`on_json_loading_failed` behave as in Quart; the
    error handed to ``on_json_loading_failed`` is a :class:`JSONBodyInvalid` (a ``ValueError``).
    """

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        data = await self.get_data(cache=cache, as_text=False, parse_form_data=False)
        try:
            result = load_json_body(data, self.json_module.loads, self.mimetype_params.get("charset"))
        except JSONBodyInvalid as error:
            result = None if silent else self.on_json_loading_failed(error)
        if cache:
            self._cached_json[silent] = result
        return result
