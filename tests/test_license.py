"""Every distribution ships the MIT license its metadata declares: the root's and each plugin's wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = [ROOT, *sorted(path.parent for path in ROOT.glob("plugins/aeros_*/pyproject.toml"))]
NOT_SOURCES = shutil.ignore_patterns(
    ".*", "__pycache__", "*.egg-info", "build", "dist", "site", "tests", "docs", "bench", "examples", "plugins"
)


def test_the_license_is_mit_with_our_copyright() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the aeros authors\n")
    for distribution in DISTRIBUTIONS[1:]:
        assert (distribution / "LICENSE").read_text() == text, f"{distribution.name}/LICENSE differs from LICENSE"


def test_every_wheel_contains_the_license(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="77", reason="building needs setuptools>=77 (the dev extra)")
    sources = []
    for distribution in DISTRIBUTIONS:  # a copy, so the build leaves the worktree alone
        source = tmp_path / "src" / distribution.name
        shutil.copytree(distribution, source, ignore=NOT_SOURCES)
        sources.append(str(source))
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--wheel-dir", str(wheels), *sources],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted(wheels.glob("*.whl"))
    assert len(built) == len(DISTRIBUTIONS), [wheel.name for wheel in built]
    license_text = (ROOT / "LICENSE").read_text()
    for wheel in built:
        with zipfile.ZipFile(wheel) as archive:
            licenses = [name for name in archive.namelist() if name.endswith(".dist-info/licenses/LICENSE")]
            assert licenses, f"{wheel.name} has no LICENSE: {archive.namelist()}"
            assert archive.read(licenses[0]).decode() == license_text
            metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
            fields = archive.read(metadata).decode()
            assert "License-Expression: MIT" in fields and "License-File: LICENSE" in fields, wheel.name
