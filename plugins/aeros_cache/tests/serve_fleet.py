"""One instance of a fleet: ``app.run(workers=N)`` on a free port with a cache shared with the others.

Usage: ``python serve_fleet.py redis:URL|fs:DIR|simple WORKERS``. Views count their runs where
every process can see them (Redis ``INCR``, or a file with one line per run), and can be told to
block or fail by the test (Redis keys). Announces "Running on URL" in the log.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aeros import FileSystemCache, RedisCache, SimpleCache, WebServer

spec, workers = sys.argv[1], int(sys.argv[2])
kind, _, where = spec.partition(":")
backend = {"redis": lambda: RedisCache(url=where), "fs": lambda: FileSystemCache(where), "simple": SimpleCache}[kind]()
backend.lock_timeout = float(os.environ.get("LOCK_TIMEOUT", "10"))
COUNT_URL = os.environ.get("COUNT_URL", where if kind == "redis" else "")
RUNS_FILE = os.environ.get("RUNS_FILE", "")
app = WebServer(__name__, cache=backend, disable_plugins=["hello"])


async def redis() -> object:
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(COUNT_URL)


async def count(name: str) -> int:
    """One more run of view ``name``, seen by every process."""
    if RUNS_FILE:
        with open(RUNS_FILE, "a") as handle:
            handle.write(f"{name} {os.getpid()}\n")
        with open(RUNS_FILE) as handle:
            return sum(1 for line in handle if line.split()[0] == name)
    client = await redis()
    try:
        return int(await client.incr(f"runs:{name}"))  # type: ignore[attr-defined]
    finally:
        await client.aclose()  # type: ignore[attr-defined]


async def flag(name: str) -> bytes | None:
    client = await redis()
    try:
        return await client.get(name)  # type: ignore[attr-defined, no-any-return]
    finally:
        await client.aclose()  # type: ignore[attr-defined]


@app.route("/pid")
async def pid() -> dict:
    return {"pid": os.getpid()}


@app.route("/one")
@app.cache(timeout=600, tags=["x"])
async def one() -> dict:
    run = await count("one")
    await asyncio.sleep(float(os.environ.get("VIEW_SECONDS", "0.5")))  # the others arrive meanwhile
    return {"pid": os.getpid(), "run": run}


@app.route("/hang")
@app.cache(timeout=600)
async def hang() -> dict:
    run = await count("hang")
    if run == 1:
        await asyncio.sleep(3600)  # the test kills this process while it holds the lock
    return {"pid": os.getpid(), "run": run}


@app.route("/swr")
@app.cache(timeout=1, stale_while_revalidate=600)
async def swr() -> dict:
    run = await count("swr")
    if run > 1:  # the refresh waits until the test lets it go
        client = await redis()
        try:
            await client.blpop(["go:swr"], timeout=20)  # type: ignore[attr-defined]
        finally:
            await client.aclose()  # type: ignore[attr-defined]
    return {"run": run}


@app.route("/sie")
@app.cache(timeout=1, stale_if_error=600)
async def sie() -> dict:
    run = await count("sie")
    if await flag("fail:sie"):
        raise RuntimeError("the view broke")
    return {"run": run}


@app.route("/slowfail")
@app.cache(timeout=600)
async def slowfail() -> dict:
    await count("slowfail")
    await asyncio.sleep(float(os.environ.get("VIEW_SECONDS", "0.5")))
    raise RuntimeError("slow and broken")


@app.route("/tagged/<name>")
@app.cache(timeout=600, tags=["x", lambda name: f"item-{name}"], surrogate_keys=True)
async def tagged(name: str) -> dict:
    return {"name": name, "pid": os.getpid(), "run": await count(f"tagged-{name}")}


@app.route("/invalidate", methods=["POST"])
async def invalidate() -> dict:
    return {"deleted": await app.cache.invalidate(tags=["x"])}


@app.route("/clear", methods=["POST"])
async def clear() -> dict:
    return {"cleared": await app.clear_cache()}


@app.route("/delete", methods=["POST"])
async def delete() -> dict:
    return {"deleted": await app.cache.delete(one), "pid": os.getpid()}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=0, workers=workers, graceful_timeout=3, access_log_to_std=False)
