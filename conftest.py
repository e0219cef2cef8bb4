"""The two passes of ``./dev test`` (and ``./dev coverage``, ``test-min``, ``test-latest``).

``AEROS_TEST_PASS=parallel`` leaves out the tests marked ``serial``: pytest-xdist's workers run the
rest side by side. ``AEROS_TEST_PASS=serial`` runs only the ``serial`` ones, one at a time on an
otherwise idle machine: they load it themselves (a connection flood, a fleet behind HAProxy, memory
measured under load, signals with time bounds) and must not share it with other tests.
Unset (plain ``pytest``), every test runs.
"""

from __future__ import annotations

import os

import pytest

PASSES = ("parallel", "serial")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = os.environ.get("AEROS_TEST_PASS", "")
    if not chosen:
        return
    if chosen not in PASSES:
        raise pytest.UsageError(f"AEROS_TEST_PASS={chosen!r}: one of {', '.join(PASSES)}, or unset")
    keep = [item for item in items if (item.get_closest_marker("serial") is not None) == (chosen == "serial")]
    if len(keep) < len(items):
        kept = {id(item) for item in keep}
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep
