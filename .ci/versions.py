"""The dependency ranges declared in the repository's pyproject files, for the version sets of CI.

    python .ci/versions.py minimum     constraints pinning every dependency to its declared lower bound
    python .ci/versions.py uncapped    the dependencies without their upper bounds (for the newest releases)
    python .ci/versions.py check       installed versions against the declared ranges: one line each,
                                       "beyond" for a release newer than the range allows

One reading of the ranges: every pyproject.toml of the repository (the root, plugins/*, examples/*),
``[project] dependencies`` and every ``[project.optional-dependencies]`` list; the repository's own
distributions (aeros, aeros-*) are left out. ``check`` runs in the virtual environment it reports on.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pyprojects() -> list[Path]:
    return [
        ROOT / "pyproject.toml",
        *sorted(ROOT.glob("plugins/*/pyproject.toml")),
        *sorted(ROOT.glob("examples/*/pyproject.toml")),
    ]


def requirements() -> list[Requirement]:
    """Every third-party requirement declared, in file order."""
    found = []
    for path in pyprojects():
        project = tomllib.loads(path.read_text())["project"]
        lists = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values()]
        for text in (text for texts in lists for text in texts):
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            if name != "aeros" and not name.startswith("aeros-"):
                found.append(requirement)
    return found


def lower_bound(requirement: Requirement) -> Version | None:
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def minimum() -> list[str]:
    """``name==lower`` for each dependency (the highest lower bound where several are declared)."""
    lowest: dict[str, Version] = {}
    for requirement in requirements():
        bound = lower_bound(requirement)
        if bound is None:
            raise SystemExit(f"{requirement} has no lower bound: declare the oldest version tested")
        name = canonicalize_name(requirement.name)
        lowest[name] = max(bound, lowest.get(name, bound))
    return [f"{name}=={version}" for name, version in sorted(lowest.items())]


def uncapped() -> list[str]:
    """Each requirement with its lower bound, extras and marker, without an upper bound."""
    lines = []
    for requirement in requirements():
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        bound = lower_bound(requirement)
        marker = f"; {requirement.marker}" if requirement.marker else ""
        lines.append(f"{requirement.name}{extras}{f'>={bound}' if bound else ''}{marker}")
    return sorted(set(lines))


def check() -> int:
    """Print installed version and declared ranges per dependency; return how many are beyond them."""
    declared: dict[str, list[Requirement]] = {}
    for requirement in requirements():
        if not requirement.marker or requirement.marker.evaluate({"extra": ""}):
            declared.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    beyond = 0
    for name, requirements_of_name in sorted(declared.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        ranges = sorted({str(requirement.specifier) for requirement in requirements_of_name})
        inside = all(
            requirement.specifier.contains(installed, prereleases=True) for requirement in requirements_of_name
        )
        beyond += not inside
        verdict = "in range" if inside else "BEYOND the declared range"
        print(f"  {name:<20} {installed:<10} declared {' and '.join(ranges):<18} {verdict}")
    return beyond


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "minimum":
        print("\n".join(minimum()))
    elif command == "uncapped":
        print("\n".join(uncapped()))
    elif command == "check":
        beyond = check()
        print(f"versions: {beyond} installed release(s) newer than the declared ranges")
        return 3 if beyond else 0
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
