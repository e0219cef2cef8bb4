"""The ``WebServer(...)`` keywords that plugins declare, and the error for unknown ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import extra_for_option, known_plugin_options


@dataclass(frozen=True)
class Option:
    """A ``WebServer(...)`` keyword a plugin accepts, with its default."""

    name: str
    default: Any = None
    help: str = ""


class UnknownOptionError(TypeError):
    """``WebServer(...)`` got a keyword that no installed plugin accepts."""


def resolve(
    given: Mapping[str, Any], declared: Mapping[str, Option], other_known: Iterable[str] = ()
) -> dict[str, Any]:
    """Return every declared option's value; raise ``UnknownOptionError`` for the rest.

    A keyword of a known but not installed first-party plugin passed with the value ``None``
    (``cache=None``) means "not used" and is accepted, so old code keeps working.
    """
    values = {name: option.default for name, option in declared.items()}
    for name, value in given.items():
        if name in declared:
            values[name] = value
            continue
        extra = extra_for_option(name)
        if extra is not None and value is None:
            continue
        raise UnknownOptionError(unknown_message(name, [*declared, *other_known]))
    return values


def unknown_message(name: str, known: Iterable[str]) -> str:
    """Name the keyword, the closest known one, and the extra of a plugin that would take it."""
    declared = set(known)
    message = f"WebServer() got an unexpected keyword argument {name!r}"
    close = difflib.get_close_matches(name, sorted(declared | set(known_plugin_options())), n=1, cutoff=0.6)
    suggestion = close[0] if close else None
    if suggestion and suggestion != name:
        message += f"; did you mean {suggestion!r}?"
    for candidate in (name, suggestion):
        extra = extra_for_option(candidate) if candidate and candidate not in declared else None
        if extra is not None:
            message += (
                f"{'' if message.endswith('?') else ';'} {candidate!r} is taken by a plugin that is not installed or is disabled:"
                f" pip install 'aeros[{extra}]'"
            )
            break
    return message
