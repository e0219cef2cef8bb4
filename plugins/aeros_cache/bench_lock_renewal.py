"""What renewing the fleet lock costs a miss: 200 misses on FileSystemCache, in process.

Usage: ``python plugins/aeros_cache/bench_lock_renewal.py [rounds]``. First the renewal alone
(started and stopped, 20,000 times); then the misses. Each round sends 200 GETs
of distinct keys (each a miss that takes and gives back the key's lock file) through Quart's test
client, once per variant, interleaved (load from elsewhere hits each alike); medians reported:

* ``renewal``: as shipped (a timer per miss; the renewal task only for views slower than
  ``lock_timeout / 3``, never here);
* ``eager task``: a renewal task started with every lock (the straightforward design);
* ``none``: no renewal at all (before this change).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from typing import Any

from aeros_cache import flight

from aeros import FileSystemCache, WebServer

MISSES = 200


class EagerRenewal(flight.Renewal):
    def __init__(self, locks: Any, key: str, token: str, interval: float) -> None:
        self.locks, self.key, self.token, self.interval = locks, key, token, interval
        self.timer = None
        self.task = None
        self._due()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not await self.locks.extend(self.key, self.token):
                return


class NoRenewal:
    def stop(self) -> None:
        pass


def keep_with(kind: str) -> Any:
    def keep(self: Any, key: str, token: str) -> Any:
        if kind == "none":
            return NoRenewal()
        cls = EagerRenewal if kind == "eager task" else flight.Renewal
        return cls(self, key, token, self.backend.lock_timeout / 3)

    return keep


async def one_round(app: Any, kind: str, round_number: int) -> float:
    flight.FleetLocks.keep = keep_with(kind)  # type: ignore[method-assign]
    client = app.test_client()
    started = time.perf_counter()
    for n in range(MISSES):
        response = await client.get(f"/v/{kind.replace(' ', '-')}-{round_number}-{n}")
        assert response.status_code == 200 and response.headers["X-Cache"] == "MISS"
    return (time.perf_counter() - started) / MISSES


async def main(rounds: int) -> None:
    kinds = ["none", "renewal", "eager task"]
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as directory:
        app: Any = WebServer(__name__, cache=FileSystemCache(directory, threshold=100_000), disable_plugins=["hello"])

        @app.route("/v/<name>")
        @app.cache(timeout=600)
        async def view(name: str) -> str:
            return name

        async with app.test_app():
            await one_round(app, "none", -1)  # warm-up
            for round_number in range(rounds):
                for kind in kinds:
                    results[kind].append(await one_round(app, kind, round_number))
    base = statistics.median(results["none"])
    print(f"{MISSES} misses on FileSystemCache in process, median of {rounds} rounds, per miss:")
    for kind in kinds:
        median = statistics.median(results[kind])
        print(f"  {kind:<11} {median * 1e6:8.1f} µs  ({(median - base) * 1e6:+.1f} µs vs none)")


async def start_and_stop(rounds: int) -> None:
    """The renewal alone: started and stopped 20,000 times (as a miss does), per variant."""

    class Locks:
        renewing: set[Any] = set()

    locks: Any = Locks()
    count = 20_000
    print(f"starting and stopping a renewal, {count} times, median of {rounds} rounds, each:")
    timings: dict[str, list[float]] = {"renewal": [], "eager task": []}
    for _ in range(rounds):
        for kind, cls in (("renewal", flight.Renewal), ("eager task", EagerRenewal)):
            started = time.perf_counter()
            for _ in range(count):
                cls(locks, "k", "t", 3.3).stop()
                await asyncio.sleep(0)  # the loop turns, as it does between the lock and the answer
            timings[kind].append((time.perf_counter() - started) / count)
    started = time.perf_counter()
    for _ in range(count):
        await asyncio.sleep(0)
    idle = (time.perf_counter() - started) / count
    for kind, values in timings.items():
        print(f"  {kind:<11} {(statistics.median(values) - idle) * 1e6:6.2f} µs")


if __name__ == "__main__":
    asyncio.run(start_and_stop(int(sys.argv[1]) if len(sys.argv) > 1 else 9))
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9))
