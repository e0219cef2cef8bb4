"""Type hints on the public API: mypy is clean on aeros, aeros_core and the first-party plugins,
user code type-checks against them, and every distribution ships ``py.typed``.

mypy's configuration is ``[tool.mypy]`` in the root pyproject.toml; run ``mypy`` from the
repository root to see what this test sees.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ERROR = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): error: (?P<message>.*)$", re.M)

# Errors in aeros_core/runner/ (not ours to change; reported to its owner). Each entry is
# (path, start of the message); a new error anywhere, or one of these elsewhere, fails the test.
KNOWN_RUNNER_ERRORS: list[tuple[str, str]] = []


def mypy(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is not installed: pip install mypy (it is in the dev extra)")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache"), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def errors(output: str) -> list[tuple[str, str]]:
    return [(match["path"].replace("\\", "/"), match["message"]) for match in ERROR.finditer(output)]


def test_mypy_is_clean_on_the_public_api():
    done = mypy()  # files and flags from [tool.mypy] in pyproject.toml
    output = done.stdout + done.stderr
    checked = re.search(r"(\d+) source files?", output)
    assert checked and int(checked.group(1)) >= 20, output
    unexpected = [
        f"{path}: {message}"
        for path, message in errors(output)
        if not any(path == known_path and message.startswith(known) for known_path, known in KNOWN_RUNNER_ERRORS)
    ]
    assert not unexpected, "mypy found type errors:\n" + "\n".join(unexpected)
    if not errors(output):
        assert done.returncode == 0, output


USER_CODE = """
from typing import Any

from aeros import AfterResponse, Option, Stage, ThreadedServer, WebServer, hookimpl
from aeros.misc import sync_to_async


class Plugin:
    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [Option("typed_check", None, "")]

    @hookimpl
    def aeros_after_response(self, app: WebServer) -> AfterResponse:
        async def transform(response: Any) -> Any:
            return response
        return AfterResponse(Stage.HEADERS + 1, transform)


@sync_to_async
def blocking(x: int) -> str:
    return str(x)


app = WebServer(__name__, port=8001, plugins=[Plugin])


@app.route("/")
async def home() -> str:
    return await blocking(1)


def start() -> tuple[str, str, int]:
    server: ThreadedServer = app.run_in_thread(port=0)
    server.stop(timeout=5)
    return server.url, server.host, server.port
"""


def test_user_code_type_checks_against_the_public_api(tmp_path: Path):
    (tmp_path / "user_app.py").write_text(textwrap.dedent(USER_CODE))
    done = mypy("--strict", "--follow-imports=silent", "--no-warn-unused-ignores", str(tmp_path / "user_app.py"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_types_are_precise_enough_to_catch_mistakes(tmp_path: Path):
    (tmp_path / "wrong.py").write_text(
        textwrap.dedent("""
        from aeros import WebServer, Stage

        app = WebServer(__name__)
        server = app.run_in_thread(port=0)
        server.url + 1
        server.port + "1"
        app.run(workers="4")
        Stage.HEADERS.lower()
    """)
    )
    done = mypy("--follow-imports=silent", str(tmp_path / "wrong.py"))
    found = [line for _, line in errors(done.stdout)]
    assert len(found) == 4, done.stdout


# --- py.typed in every distribution -------------------------------------------------------------


def distributions() -> list[Path]:
    return [ROOT, *sorted(ROOT.glob("plugins/*/")), *sorted(ROOT.glob("examples/*/"))]


@pytest.mark.parametrize("dist", distributions(), ids=lambda path: path.name or "aeros")
def test_every_distribution_ships_py_typed(dist: Path):
    pyproject = dist / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip(f"{dist.name} is not a distribution")  # e.g. examples/hello, a plain script
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads(pyproject.read_text())
    setuptools = config.get("tool", {}).get("setuptools", {})
    top_level = [name for name in setuptools.get("packages", []) if "." not in name]
    assert top_level, f"{pyproject}: no [tool.setuptools] packages"
    package_data = setuptools.get("package-data", {})
    for package in top_level:
        assert (dist / package / "py.typed").is_file(), f"{dist / package}/py.typed is missing"
        assert "py.typed" in package_data.get(package, []), f"{pyproject}: py.typed not in package-data[{package}]"
        try:
            installed = resources.files(package) / "py.typed"
        except ModuleNotFoundError:
            continue  # not installed here; the source tree check above still holds
        assert installed.is_file(), f"the installed {package} lacks py.typed"


def test_threaded_server_port_is_an_int(tmp_path: Path):
    (tmp_path / "port.py").write_text(
        "from aeros import WebServer\nreveal_type(WebServer(__name__).run_in_thread().port)\n"
    )
    done = mypy("--follow-imports=silent", str(tmp_path / "port.py"))
    assert re.search(r'Revealed type is "(builtins\.)?int"', done.stdout), done.stdout


# --- what plugins add: the facade's names and app.cache ------------------------------------------


def plugin_paths() -> str:
    """The plugin source directories, as a regular (not editable) install puts them on mypy's path:
    mypy cannot follow the import hooks of editable installs."""
    return ":".join(str(path) for path in sorted(ROOT.glob("plugins/aeros_*")))


def mypy_as_installed(*arguments: str) -> subprocess.CompletedProcess[str]:
    import os

    pytest.importorskip("mypy", reason="mypy is not installed: pip install mypy (it is in the dev extra)")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache"), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MYPYPATH": plugin_paths()},
    )


def test_the_facade_declares_every_plugin_name_for_type_checkers():
    """aeros/__init__.py's TYPE_CHECKING imports are the catalog's names, each re-exported (``X as X``)."""
    import ast

    from aeros_core.catalog import KNOWN_PLUGINS

    tree = ast.parse((ROOT / "aeros" / "__init__.py").read_text())
    block = next(
        node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    declared = set()
    for node in block.body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: `X as X` marks the re-export"
            declared.add((node.module, alias.name))
    catalog = {(plugin.module, name) for plugin in KNOWN_PLUGINS for name in plugin.names}
    assert declared == catalog


PLUGIN_USER_CODE = """
from aeros import CachingApp, EasyRequest, Gzip, SimpleCache, WebServer, cache_of

app = WebServer(__name__, cache=SimpleCache(default_timeout=60), compression=Gzip(level=6))
cache = cache_of(app)


@app.route("/items/<int:number>")
@cache(timeout=60, tags=["items"])
async def item(number: int) -> dict[str, int]:
    return {"number": number}


@app.route("/echo", methods=["POST"])
async def echo(req: EasyRequest) -> str:
    return str(await req.json)


def register(app: CachingApp) -> None:
    @app.cache(stale_while_revalidate=30)
    async def view() -> str:
        return "x"


async def invalidate() -> int:
    dropped: int = await cache.invalidate(tags=["items"])
    cleared: bool = await cache.clear()
    return dropped + int(cleared)


answer: dict[str, int]
async def call() -> None:
    global answer
    answer = await item(1)  # the view keeps its own signature through @cache(...)
"""


def test_plugin_code_type_checks_strictly_through_the_facade_and_the_cache_accessor(tmp_path: Path):
    (tmp_path / "plugin_user.py").write_text(textwrap.dedent(PLUGIN_USER_CODE))
    done = mypy_as_installed("--strict", "--follow-imports=silent", str(tmp_path / "plugin_user.py"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_plugin_names_and_the_cache_are_typed_precisely_enough_to_catch_mistakes(tmp_path: Path):
    (tmp_path / "wrong_plugins.py").write_text(
        textwrap.dedent("""
        from aeros import Gzip, SimpleCache, WebServer, cache_of

        app = WebServer(__name__, cache=SimpleCache())
        cache = cache_of(app)

        @cache(timeout="a minute")
        async def view(number: int) -> str:
            return str(number)

        async def wrong() -> None:
            await view("1")
            await cache.invalidate(tags=42)

        Gzip(level="9")
        SimpleCache(threshold="many")
        app.cache
    """)
    )
    done = mypy_as_installed("--strict", "--follow-imports=silent", str(tmp_path / "wrong_plugins.py"))
    found = [f"{line}" for _, line in errors(done.stdout)]
    assert len(found) == 6, done.stdout
    assert 'has no attribute "cache"' in found[-1], found  # untyped: the accessor is the typed route
