#!/usr/bin/env python3
"""Quart's JSON provider against aeros' FastJSONProvider: ``.venv/bin/python bench/json_provider.py``.

No server: serialises bench/apps/common.py's ``big_document()`` (about 60 KB) with
``app.json.dumps(doc, separators=(",", ":"))`` and builds ``app.json.response(doc)`` (what a view
returning a dict costs), and prints microseconds per call: the minimum over several rounds of
CPU time (time.process_time), so other work on a shared machine matters little.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))

from common import big_document  # noqa: E402
from quart import Quart  # noqa: E402
from quart.json.provider import DefaultJSONProvider  # noqa: E402

from aeros_core.builtins.fast_json import FastJSONProvider, load_orjson  # noqa: E402


def per_call(function: Callable[[], Any], calls: int, rounds: int) -> float:
    """Minimum over ``rounds`` of the CPU microseconds per call of ``calls`` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            function()
        best = min(best, (time.process_time() - start) / calls)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="calls per round (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the minimum is printed (default 7)")
    args = parser.parse_args()
    if load_orjson() is None:
        sys.exit("orjson>=3.11.7 is not installed: pip install 'aeros[speed]'")

    document = big_document()
    app = Quart(__name__)
    providers = {"quart (stdlib json)": DefaultJSONProvider(app), "aeros fast_json (orjson)": FastJSONProvider(app)}
    size = len(providers["quart (stdlib json)"].dumps(document, separators=(",", ":")))
    print(f"document: {size} bytes; µs per call, min of {args.rounds} rounds of {args.calls} calls (CPU time)")
    print(f"{'provider':<26} {'dumps':>9} {'response':>9}")
    results = {}
    for name, provider in providers.items():
        dumps = per_call(lambda: provider.dumps(document, separators=(",", ":")), args.calls, args.rounds)
        response = per_call(lambda: provider.response(document), args.calls, args.rounds)
        results[name] = (dumps, response)
        print(f"{name:<26} {dumps:>9.1f} {response:>9.1f}")
    (slow_dumps, slow_response), (fast_dumps, fast_response) = results.values()
    print(f"{'speed-up':<26} {slow_dumps / fast_dumps:>8.1f}× {slow_response / fast_response:>8.1f}×")


if __name__ == "__main__":
    main()
