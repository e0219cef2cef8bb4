"""The Quart conformance runner (tests/conformance/run.py) and its pytest plugin catch what they should."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_run", ROOT / "tests" / "conformance" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


runner = load_runner()


def outcome(passed: Iterable[str] = (), failed: Iterable[str] = ()) -> Any:
    return runner.Outcome(passed=set(passed), failed=set(failed))


def test_a_test_passing_on_quart_and_failing_on_aeros_is_reported() -> None:
    problems = runner.compare(outcome({"a", "b"}), outcome({"a"}, {"b"}), baseline={"b"})
    assert problems == ["fails on aeros (passes on plain Quart): b"]


def test_baseline_failures_are_allowed_only_when_quart_fails_them_too() -> None:
    assert runner.compare(outcome({"a"}, {"b"}), outcome({"a"}, {"b"}), baseline={"b"}) == []
    problems = runner.compare(outcome({"a"}, {"b"}), outcome({"a"}, {"b"}), baseline=set())
    assert problems == [
        "fails on aeros (not in the baseline): b",
        f"fails on plain Quart but is not in {runner.BASELINE.name}: b",
    ]


def test_different_test_sets_and_empty_runs_are_reported() -> None:
    assert runner.compare(outcome({"a", "b"}), outcome({"a"}), baseline=set()) == ["run in only one of the two runs: b"]
    assert runner.compare(outcome(), outcome(), baseline=set()) == ["no test ran"]


def test_the_baseline_in_the_repository_lists_the_four_known_failures() -> None:
    baseline = runner.read_baseline()
    assert len(baseline) == 4
    assert "test_blueprints.py::test_cli_blueprints[cli_group2-args2]" in baseline


def test_junit_reports_are_read_by_test_id(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(
        textwrap.dedent(
            """\
            <testsuites><testsuite>
              <testcase classname="wrappers.test_base" name="test_ok"/>
              <testcase classname="test_app" name="test_bad[1-2]"><failure message="x"/></testcase>
              <testcase classname="test_app" name="test_broken"><error message="x"/></testcase>
              <testcase classname="test_app" name="test_skip"><skipped message="x"/></testcase>
            </testsuite></testsuites>
            """
        )
    )
    result = runner.read_junit(report)
    assert result.passed == {"wrappers/test_base.py::test_ok"}
    assert result.failed == {"test_app.py::test_bad[1-2]", "test_app.py::test_broken"}
    assert result.skipped == {"test_app.py::test_skip"}


def test_a_missing_suite_is_skipped_locally_and_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert runner.main(["--suite", str(tmp_path / "absent")]) == 0
    monkeypatch.setenv("CI", "true")
    assert runner.main(["--suite", str(tmp_path / "absent")]) == 1


def test_end_to_end_a_suite_that_sees_the_substitute_fails(tmp_path: Path) -> None:
    """A two-test suite: one passes anywhere, one passes only on plain Quart -> the runner fails."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text("")
    (suite / "test_tiny.py").write_text(
        textwrap.dedent(
            """\
            from quart import Quart
            from quart.asgi import ASGIHTTPConnection

            async def test_anywhere():
                app = Quart(__name__, "/assets")
                assert app.static_url_path == "/assets"
                assert (await app.test_client().get("/assets/none")).status_code == 404

            def test_only_on_plain_quart():
                assert type(Quart(__name__)).__name__ == "Quart"
                assert ASGIHTTPConnection.__module__ == "quart.asgi"
            """
        )
    )
    assert runner.main(["--suite", str(suite)]) == 1
    (suite / "test_tiny.py").write_text(
        (suite / "test_tiny.py").read_text().replace("def test_only_on_plain_quart", "def _not_a_test")
    )
    assert runner.main(["--suite", str(suite)]) == 0
