"""Every dependency of every pyproject.toml is declared as a range: the one CI tests (docs/internals.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def versions_module() -> ModuleType:
    """``.ci/versions.py``: the one reading of the declared ranges (CI's minimum and latest sets use it)."""
    spec = importlib.util.spec_from_file_location("ci_versions", ROOT / ".ci" / "versions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    versions = versions_module()
    requirements = versions.requirements()
    assert any(requirement.name == "quart" for requirement in requirements)  # the reading works
    unbounded = [
        str(requirement)
        for requirement in requirements
        if versions.lower_bound(requirement) is None
        or not any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier)
    ]
    assert not unbounded, f"declare the range tested (>=oldest,<next release that may break): {unbounded}"


def test_the_minimum_set_pins_each_dependency_to_its_lower_bound() -> None:
    pins = dict(line.split("==") for line in versions_module().minimum())
    assert pins["quart"] == "0.22"
    assert (
        pins["uvicorn"] == "0.54"
    )  # 0.49 does not report a failed startup; 0.50 sends no Connection: close in the drain
    assert "aeros" not in pins and not any(name.startswith("aeros-") for name in pins)
