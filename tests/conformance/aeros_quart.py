"""pytest plugin: run a Quart test suite against ``aeros.WebServer`` (``pytest -p aeros_quart``).

Loaded before the suite's modules are imported, it replaces ``quart.Quart`` and
``quart.app.Quart`` with :class:`ConformanceServer` (a ``WebServer`` taking Quart's constructor
arguments) and ``quart.asgi.ASGIHTTPConnection`` with the connection class ``WebServer`` uses,
so that a test written for Quart builds an aeros app, with every plugin installed here, aeros's
connection class and its JSON provider. At the end it checks that the substitutes were used.

``tests/conformance/run.py`` runs the suite with and without this plugin and compares.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import quart
import quart.app
import quart.asgi

from aeros import WebServer
from aeros_core.builtins.fast_json import FastJSONProvider, load_orjson

ORIGINAL_QUART = quart.Quart
ORIGINAL_CONNECTION = quart.asgi.ASGIHTTPConnection
_QUART_POSITIONAL = [
    name
    for name, parameter in inspect.signature(ORIGINAL_QUART.__init__).parameters.items()
    if name != "self" and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
]
#: how many apps the suite built, and how many of those serialise JSON with aeros's provider
created = {"apps": 0, "fast_json": 0}


class ConformanceServer(WebServer):
    """``WebServer`` with Quart's positional arguments (``Quart(name, static_url_path, ...)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(zip(_QUART_POSITIONAL, args))
        super().__init__(**kwargs)
        created["apps"] += 1
        created["fast_json"] += isinstance(self.json, FastJSONProvider)


def pytest_configure(config: pytest.Config) -> None:
    quart.Quart = ConformanceServer  # type: ignore[misc]
    quart.app.Quart = ConformanceServer  # type: ignore[misc]
    quart.asgi.ASGIHTTPConnection = WebServer.asgi_http_class  # type: ignore[misc]


def pytest_report_header(config: pytest.Config) -> list[str]:
    connection = WebServer.asgi_http_class
    name = f"{connection.__module__}.{connection.__name__}"
    return [f"aeros conformance: quart.Quart -> ConformanceServer (aeros.WebServer), connection {name}"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"aeros conformance: {created['apps']} WebServer apps built, {created['fast_json']} with FastJSONProvider"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the suite did not actually exercise aeros."""
    problems = []
    if session.testscollected and created["apps"] == 0:
        problems.append("no test built a ConformanceServer: the substitution of quart.Quart did not take effect")
    if load_orjson() is not None and created["apps"] and created["fast_json"] == 0:
        problems.append("orjson is installed but no app used aeros's FastJSONProvider")
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            if reporter is not None:
                reporter.write_line(f"aeros conformance: {problem}", red=True)
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
