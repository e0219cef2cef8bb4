#!/usr/bin/env python3
"""Quart's own test suite against ``aeros.WebServer``: ``.venv/bin/python tests/conformance/run.py``.

Runs the suite in ``../shared/conformance/quart-0.21-tests`` (beside the repository; never
copied into it) twice, on plain Quart and with the ``aeros_quart`` plugin (``quart.Quart``
replaced by a ``WebServer``), and fails when

- a test fails on aeros that is not in ``quart_baseline.txt`` (the tests that fail on plain
  Quart too), or that passes on plain Quart;
- a test fails on plain Quart that is not in the baseline (the installed Quart changed: look,
  then update the baseline);
- the two runs did not run the same tests.

Without the suite it exits 0 with a message, except under CI (``CI=true``), where it fails.
``--suite PATH`` (or ``AEROS_QUART_SUITE``) points elsewhere; extra arguments go to pytest
(``-k json``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_SUITE = ROOT.parent / "shared" / "conformance" / "quart-0.21-tests"
BASELINE = HERE / "quart_baseline.txt"


@dataclass
class Outcome:
    """Test ids of one run, by result."""

    passed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # failures and errors
    skipped: set[str] = field(default_factory=set)

    @property
    def all(self) -> set[str]:
        return self.passed | self.failed | self.skipped


def read_baseline(path: Path = BASELINE) -> set[str]:
    """Test ids, one a line; ``#`` starts a comment."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def read_junit(path: Path) -> Outcome:
    outcome = Outcome()
    for case in ElementTree.parse(path).iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome.failed.add(test_id)
        elif case.find("skipped") is not None:
            outcome.skipped.add(test_id)
        else:
            outcome.passed.add(test_id)
    return outcome


def run_suite(suite: Path, aeros: bool, workdir: Path, extra: list[str]) -> tuple[int, Outcome]:
    """Run the suite in a subprocess; its exit status and outcomes."""
    label = "aeros" if aeros else "quart"
    report = workdir / f"{label}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        f"--rootdir={suite}",
        "-c",
        os.devnull,  # no configuration but ours: the repository's pyproject does not apply
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-o",
        "timeout=60",
        "-o",
        "junit_family=xunit1",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-q",
        "-rfE",
        f"--junitxml={report}",
        *(["-p", "aeros_quart"] if aeros else []),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    print(f"\n=== Quart's suite on {'aeros.WebServer' if aeros else 'plain Quart'} ===", flush=True)
    status = subprocess.call(command, cwd=workdir, env=env)
    if not report.exists():
        raise SystemExit(f"conformance: pytest wrote no report for the {label} run (exit status {status})")
    return status, read_junit(report)


def compare(quart: Outcome, aeros: Outcome, baseline: set[str]) -> list[str]:
    """What is wrong, one message a line; empty when aeros conforms."""
    problems = []
    for test_id in sorted(aeros.failed - (baseline & quart.failed)):
        where = "passes on plain Quart" if test_id in quart.passed else "not in the baseline"
        problems.append(f"fails on aeros ({where}): {test_id}")
    for test_id in sorted(quart.failed - baseline):
        problems.append(f"fails on plain Quart but is not in {BASELINE.name}: {test_id}")
    if quart.all != aeros.all:
        for test_id in sorted(quart.all ^ aeros.all):
            problems.append(f"run in only one of the two runs: {test_id}")
    if not aeros.all:
        problems.append("no test ran")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=Path(os.environ.get("AEROS_QUART_SUITE", DEFAULT_SUITE)))
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    suite: Path = args.suite.resolve()
    if not (suite / "conftest.py").is_file():
        message = f"conformance: Quart's test suite not found at {suite} (the shared folder beside the repository)"
        if os.environ.get("CI", "").lower() == "true":
            print(f"{message}; CI=true, so this is a failure", file=sys.stderr)
            return 1
        print(f"{message}: skipped", file=sys.stderr)
        return 0
    baseline = read_baseline()
    with tempfile.TemporaryDirectory(prefix="aeros-conformance-") as workdir:
        _, quart = run_suite(suite, False, Path(workdir), args.pytest_args)
        aeros_status, aeros = run_suite(suite, True, Path(workdir), args.pytest_args)
    problems = compare(quart, aeros, baseline)
    if aeros_status not in (0, 1):  # 1: tests failed (judged above); anything else: the run itself broke
        problems.append(f"the aeros run ended with pytest exit status {aeros_status}")
    print(
        f"\nconformance: plain Quart {len(quart.passed)} passed, {len(quart.failed)} failed;"
        f" aeros {len(aeros.passed)} passed, {len(aeros.failed)} failed;"
        f" baseline {len(baseline)} ({BASELINE.relative_to(ROOT)})"
    )
    for stale in sorted(baseline - quart.failed - (aeros.all - quart.all)):
        if stale in quart.passed:
            print(f"conformance: note: {stale} is in the baseline but passes on plain Quart now")
    if problems:
        print("conformance: FAILED", *problems, sep="\n  ")
        return 1
    print("conformance: OK, no test fails on aeros that passes on plain Quart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
