"""The documentation cannot drift from the code.

- every hookspec has an entry in docs/plugins.md (signature, stage, when it is called, an
  example), and no entry documents a hook that does not exist;
- every hookspec is exercised by some test (its name appears in a test file);
- the example of each hook registers on a real WebServer and does what the page says;
- every Python block in the docs compiles, and the testing page's example passes under pytest;
- ``mkdocs build --strict`` succeeds (warnings are errors).
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from aeros import WebServer
from aeros_core import hookspecs
from aeros_core.plugins import DISABLE_ENV, TRACE_ENV, new_manager
from aeros_core.runner.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PLUGINS_PAGE = DOCS / "plugins.md"
CODE_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
HOOK_HEADING = re.compile(r"^### `(aeros_\w+)`\s*$", re.M)


def hookspec_signatures() -> dict[str, inspect.Signature]:
    """Every hook of the plugin manager, with its signature, cross-checked against the module."""
    manager = new_manager()
    from_manager = {
        name: caller for name, caller in vars(manager.hook).items() if getattr(caller, "spec", None) is not None
    }
    from_module = {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "aeros_spec")
    }
    assert set(from_manager) == set(from_module), "the plugin manager and hookspecs.py disagree"
    assert from_manager, "no hookspecs found"
    for name, caller in from_manager.items():
        assert tuple(caller.spec.argnames) == tuple(inspect.signature(from_module[name]).parameters)
    return {name: inspect.signature(function) for name, function in from_module.items()}


def hook_sections() -> dict[str, str]:
    text = PLUGINS_PAGE.read_text()
    headings = list(HOOK_HEADING.finditer(text))
    sections: dict[str, str] = {}
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        following = re.search(r"^## ", text[heading.end() : end], re.M)
        if following:
            end = heading.end() + following.start()
        sections[heading.group(1)] = text[heading.end() : end]
    return sections


def python_blocks(text: str) -> list[str]:
    return [body for language, body in CODE_BLOCK.findall(text) if language == "python"]


# --- every hook documented, every hook tested ----------------------------------------------


def test_hookspecs_are_found():
    names = set(hookspec_signatures())
    assert len(names) >= 9 and all(name.startswith("aeros_") for name in names), names


def test_every_hookspec_has_a_docs_entry():
    signatures = hookspec_signatures()
    sections = hook_sections()
    missing = sorted(set(signatures) - set(sections))
    assert not missing, f"docs/plugins.md has no '### `name`' entry for: {missing}"
    stale = sorted(set(sections) - set(signatures))
    assert not stale, f"docs/plugins.md documents hooks that hookspecs.py does not have: {stale}"
    for name, signature in signatures.items():
        section = sections[name]
        documented = re.search(r"^Signature\n:\s+`([^`]+)`", section, re.M)
        assert documented, f"{name}: no 'Signature' entry"
        call = documented.group(1)
        assert call.startswith(f"{name}("), f"{name}: the signature names another function: {call}"
        try:
            parsed = ast.parse(f"def {call}: ...").body[0]
        except SyntaxError as error:
            raise AssertionError(f"{name}: the signature is not valid Python: {call} ({error.msg})") from None
        assert isinstance(parsed, ast.FunctionDef) and parsed.returns is not None, f"{name}: no '-> return type'"
        documented_names = [argument.arg for argument in parsed.args.args]
        assert documented_names == list(signature.parameters), f"{name}: documented parameters {documented_names}"
        for term in ("Stage", "Called"):
            assert re.search(rf"^{term}\n:\s+\S", section, re.M), f"{name}: no '{term}' entry"
        examples = python_blocks(section)
        assert any(re.search(rf"@hookimpl\s+def {name}\(", block) for block in examples), (
            f"{name}: no example with '@hookimpl' and 'def {name}('"
        )


def test_every_hookspec_has_a_test():
    test_files = [
        *ROOT.glob("tests/**/test_*.py"),
        *ROOT.glob("plugins/*/tests/**/test_*.py"),
        *ROOT.glob("examples/*/tests/**/test_*.py"),
    ]
    corpus = "\n".join(path.read_text(errors="replace") for path in test_files)
    untested = sorted(name for name in hookspec_signatures() if not re.search(rf"\b{name}\b", corpus))
    assert not untested, f"no test file under tests/, plugins/*/tests or examples/*/tests names: {untested}"


def test_plugin_management_is_documented():
    text = "\n".join(path.read_text() for path in DOCS.rglob("*.md"))
    for needle in (DISABLE_ENV, TRACE_ENV, "aeros plugins --json", "app.plugins", "aeros.trace", "disable_plugins"):
        assert needle in text, f"the docs never mention {needle}"


def test_every_first_party_plugin_has_a_page():
    pages = {path.stem for path in (DOCS / "plugins").glob("*.md")}
    plugins = {path.parent.name.removeprefix("aeros_") for path in ROOT.glob("plugins/aeros_*/pyproject.toml")}
    assert plugins, "no plugins/aeros_*/pyproject.toml found"
    missing = sorted(plugins - pages)
    assert not missing, f"no docs/plugins/<name>.md (and mkdocs.yml nav entry) for: {missing}"
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in plugins:
        assert f"plugins/{name}.md" in nav, f"docs/plugins/{name}.md is not in the mkdocs.yml nav"


def page_text(page: Path) -> str:
    """A page with its ``--8<-- "file"`` snippet includes resolved, as mkdocs renders it."""
    return re.sub(r'^--8<-- "([^"]+)"\s*$', lambda m: (ROOT / m.group(1)).read_text(), page.read_text(), flags=re.M)


def test_every_keyword_of_run_is_documented():
    documented = page_text(DOCS / "getting-started.md")
    for name in ServerSettings.keywords():
        assert f"{name}=" in documented, f"app.run({name}=...) is not in docs/getting-started.md"
    assert set(ServerSettings.keywords(thread=True)) < set(ServerSettings.keywords())


def test_every_first_party_plugin_keyword_is_on_its_page():
    from importlib import metadata

    from aeros_core.plugins import ENTRY_POINT_GROUP, instantiate

    checked = 0
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist.metadata["Name"] if entry_point.dist else ""
        if not dist.startswith("aeros-") or not (ROOT / "plugins" / dist.replace("-", "_")).is_dir():
            continue
        plugin = instantiate(entry_point.load())
        declare = getattr(plugin, "aeros_options", None)
        page = DOCS / "plugins" / f"{dist.removeprefix('aeros-')}.md"
        text = page_text(page)
        for option in declare() if declare else ():
            documented = re.search(rf"`{option.name}`|\b{option.name}=", text)
            assert documented, f"{page.relative_to(ROOT)} does not document the keyword {option.name}="
            checked += 1
    assert checked, "no first-party plugin keyword found to check"


# --- the examples of docs/plugins.md run ----------------------------------------------------


def plugin_classes(section: str) -> list[type]:
    """Exec the section's examples; return the classes that implement a hook."""
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in python_blocks(section):
        exec(compile(block, str(PLUGINS_PAGE), "exec"), namespace)
    return [
        value
        for value in namespace.values()
        if inspect.isclass(value) and any(hasattr(member, "aeros_impl") for member in vars(value).values())
    ]


@pytest.mark.parametrize("hook", sorted(hookspec_signatures()))
def test_each_hook_example_registers_and_serves(hook: str, serve):
    classes = plugin_classes(hook_sections()[hook])
    implementing = [cls for cls in classes if hasattr(getattr(cls, hook, None), "aeros_impl")]
    assert implementing, f"the example of {hook} defines no plugin class implementing it"
    app = WebServer(__name__, plugins=implementing)  # pluggy validates hook and argument names
    instance = next(info.plugin for info in app.plugins if isinstance(info.plugin, implementing[0]))

    @app.route("/")
    async def home() -> str:
        return "home"

    if hook == "aeros_server_backend":
        return  # served for real below
    server = serve(app)
    response = httpx.get(server.url + "/", timeout=10)
    assert response.status_code == 200 and response.text == "home"
    if hook == "aeros_after_response":
        assert response.headers["x-uptime"].isdigit()
    elif hook == "aeros_asgi_wrapper":
        assert response.headers["x-request-number"] == f"{os.getpid()}-1"
    elif hook == "aeros_before_request":
        instance.down = True
        down = httpx.get(server.url + "/", timeout=10)
        assert (down.status_code, down.headers["retry-after"]) == (503, "60")
    elif hook == "aeros_app_init":
        assert httpx.get(server.url + "/healthz", timeout=10).json() == {"ok": True}
    elif hook == "aeros_startup":
        assert instance.pool is not None
    server.stop(timeout=10)


def test_documented_server_config_example_changes_settings():
    (keep_alive,) = [cls for cls in plugin_classes(hook_sections()["aeros_server_config"])]
    app = WebServer(__name__, plugins=[keep_alive], keepalive_seconds=2)
    settings = ServerSettings()
    app.plugin_manager.hook.aeros_server_config(app=app, settings=settings)
    assert settings.keep_alive_timeout == 2.0


def test_documented_aeros_server_backend_example_serves_requests(serve):
    """The backend of docs/plugins.md, provided through aeros_server_backend, serving for real."""
    (plugin,) = [
        cls for cls in plugin_classes(hook_sections()["aeros_server_backend"]) if hasattr(cls, "aeros_server_backend")
    ]
    app = WebServer(__name__, plugins=[plugin])
    assert app.plugin_manager.hook.aeros_server_backend(name="hypercorn-proxied").name == "hypercorn-proxied"

    @app.route("/client")
    async def client() -> dict[str, Any]:
        from quart import request

        return {"addr": request.remote_addr, "scheme": request.scheme}

    server = serve(app, server="hypercorn-proxied")
    answer = httpx.get(
        server.url + "/client", headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}, timeout=10
    )
    assert answer.json() == {"addr": "203.0.113.7", "scheme": "https"}


# --- every code block is sound; the testing page's example passes ---------------------------


def test_every_python_block_in_the_docs_compiles():
    failures = []
    for page in sorted(DOCS.rglob("*.md")):
        for index, block in enumerate(python_blocks(page.read_text())):
            try:
                compile(
                    block,
                    f"{page.relative_to(ROOT)} block {index + 1}",
                    "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                    dont_inherit=True,
                )
            except SyntaxError as error:
                failures.append(f"{error.filename}: {error.msg} (line {error.lineno})")
    assert not failures, "\n".join(failures)


def test_testing_page_example_passes_under_pytest(tmp_path: Path):
    files = {}
    for block in python_blocks((DOCS / "testing.md").read_text()):
        named = re.match(r"# file: (\S+)\n", block)
        if named:
            files[named.group(1)] = block
    assert set(files) == {"myapp.py", "test_myapp.py"}
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout, done.stdout


# --- the site builds --------------------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install mkdocs 'mkdocstrings[python]'")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed: pip install 'mkdocstrings[python]'")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, textwrap.indent(done.stdout + done.stderr, "  ")
    for page in ("index.html", "plugins/index.html", "reference/hookspecs/index.html", "testing/index.html"):
        assert (tmp_path / "site" / page).exists(), page
    hook_reference = (tmp_path / "site" / "reference" / "hookspecs" / "index.html").read_text()
    for name in hookspec_signatures():
        assert name in hook_reference, f"the API reference lacks {name}"


def test_the_typed_run_keywords_are_the_settings():
    from aeros_core.runner.settings import RunOptions, ThreadRunOptions

    assert set(RunOptions.__annotations__) | {"host", "port"} == {*ServerSettings.keywords(), "backend_options"}
    assert set(ThreadRunOptions.__annotations__) == {*ServerSettings.keywords(thread=True), "backend_options"} - {
        "host",
        "port",
    }


# --- the README's and the docs' example apps run, with the extras they say to install ---------

EXAMPLE_PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "plugins" / "aeros_request" / "README.md"]
PIP_INSTALL = re.compile(r"pip install '[^'\n]*aeros\[([\w,]+)\]'")


def example_apps() -> list[tuple[str, str, int]]:
    """(page, block, offset) of each Python block that builds a WebServer and routes on it at
    module level; the original Aeros' code (``from Aeros import``) is only shown, not run."""
    found = []
    for page in EXAMPLE_PAGES:
        text = page_text(page)
        for match in CODE_BLOCK.finditer(text):
            language, block = match.groups()
            if language == "python" and re.search(r"^app = WebServer\(", block, re.M) and "@app.route" in block:
                if "from Aeros" not in block:
                    found.append((str(page.relative_to(ROOT)), block, match.start()))
    return found


def distributions_of_extras(extras: list[str]) -> set[str]:
    """The plugin distributions that ``pip install 'aeros[extras]'`` brings (from pyproject.toml)."""
    import tomllib

    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {re.split(r"[\[<>=;]", requirement)[0] for extra in extras for requirement in optional.get(extra, ())}


def distributions_used(block: str) -> set[str]:
    """The plugin distributions an example needs: for the keywords of its WebServer(...) and the
    names it imports from aeros."""
    from aeros_core.catalog import KNOWN_PLUGINS

    tree = ast.parse(block)
    keywords = {
        keyword.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "WebServer"
        for keyword in node.keywords
    }
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "aeros"
        for alias in node.names
    }
    return {
        plugin.module.replace("_", "-")
        for plugin in KNOWN_PLUGINS
        if keywords & set(plugin.options) or names & set(plugin.names)
    }


def test_the_examples_are_found():
    pages = {page for page, _, _ in example_apps()}
    assert {"README.md", "plugins/aeros_request/README.md", "docs/getting-started.md"} <= pages, pages


@pytest.mark.parametrize(
    "page, block, offset", example_apps(), ids=[f"{page}@{offset}" for page, _, offset in example_apps()]
)
def test_each_example_app_answers_its_plain_gets(page: str, block: str, offset: int, serve):
    """Exec'd as a module (not ``__main__``), served for real: every route without URL variables
    that takes GET answers a plain GET with a success, not a 4xx or 5xx."""
    text = page_text(ROOT / page)
    installs = PIP_INSTALL.findall(text[:offset])
    if installs:  # the nearest `pip install 'aeros[...]'` above the example brings what it uses
        extras = installs[-1].split(",")
        missing = distributions_used(block) - distributions_of_extras(extras)
        assert not missing, f"{page}: the example needs {sorted(missing)}, not in pip install 'aeros[{installs[-1]}]'"
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, f"{page} (offset {offset})", "exec"), namespace)
    app = namespace["app"]
    server = serve(app)
    for rule in app.url_map.iter_rules():
        if rule.arguments or "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        answer = httpx.get(server.url + rule.rule, timeout=10)
        assert answer.status_code < 400, f"{page}: GET {rule.rule} -> {answer.status_code} {answer.text[:200]}"
