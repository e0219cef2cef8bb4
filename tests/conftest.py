"""Shared helpers for the core tests: real servers in subprocesses, throwaway plugin distributions."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aeros_core.testing import AppProcess

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:  # tests/supervision.py: helpers of the supervisor tests
    sys.path.insert(0, str(ROOT / "tests"))


#: the core tests' name for :class:`aeros_core.testing.AppProcess`
ScriptServer = AppProcess


@pytest.fixture
def script_server(tmp_path: Path) -> Iterator:
    """Factory: ``script_server(source, env=None)`` writes the script and starts it."""
    started: list[ScriptServer] = []

    def start(
        source: str, env: dict[str, str] | None = None, name: str = "server_app.py", args: list[str] | None = None
    ) -> ScriptServer:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        server = ScriptServer(path, env, args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory: ``plugin_dist(dist, module_source, entry_points={name: "module:Class"})``.

    Writes the module and a ``*.dist-info`` (METADATA, entry_points.txt) into a temp dir on
    ``sys.path``, so ``importlib.metadata`` discovers it as an installed distribution.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    added_modules: list[str] = []

    def make(dist: str, module: str, source: str, entry_points: dict[str, str], version: str = "1.0") -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[aeros]\n{lines}\n")
        added_modules.append(module)
        return site

    yield make
    for module in added_modules:
        sys.modules.pop(module, None)
