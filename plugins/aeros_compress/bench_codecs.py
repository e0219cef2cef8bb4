"""Measure the codecs aeros-compress can use, to choose its defaults and thresholds.

Run from the repository root (any codec that is not installed is left out)::

    .venv/bin/python plugins/aeros_compress/bench_codecs.py            # everything
    .venv/bin/python plugins/aeros_compress/bench_codecs.py codecs     # levels on the 60 KB JSON
    .venv/bin/python plugins/aeros_compress/bench_codecs.py offload    # time vs size, to_thread cost

``codecs``: one-shot compression of a 60 KB JSON document at several levels; throughput is
MB of *input* per second on one core, ratio is original size / compressed size.

``offload``: for bodies of several sizes, the time to compress them at the default levels,
next to the cost of one ``asyncio.to_thread`` round trip measured on a running loop, and how
long the event loop stays blocked either way. The off-loop threshold in
``aeros_compress/codecs.py`` (``OFFLOAD_BUDGET_US``) comes from these numbers.

``middleware``: microseconds per response through the middleware, in process: the cost of
passing responses that are not compressed, of compressing, and of a variant-LRU hit.

``stream``: the price of flushing per chunk (Server-Sent Events): ratio and time for a
document sent as 64 chunks of about 1 KB, against one shot.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable


def sample_json(size: int = 60_000, seed: int = 0) -> bytes:
    """A JSON document of about ``size`` bytes that looks like an API listing."""
    rng = random.Random(seed)
    words = (
        "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
        "november oscar papa quebec romeo sierra tango uniform victor whiskey"
    ).split()
    items = []
    text = b"[]"
    while len(text) < size:
        n = len(items)
        items.append(
            {
                "id": n,
                "uuid": f"{rng.getrandbits(128):032x}",
                "name": " ".join(rng.choice(words) for _ in range(3)).title(),
                "email": f"{rng.choice(words)}.{rng.choice(words)}{rng.randint(1, 999)}@example.com",
                "active": rng.random() < 0.7,
                "score": round(rng.uniform(0, 100), 3),
                "tags": rng.sample(words, rng.randint(1, 4)),
                "created": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
            }
        )
        text = json.dumps({"count": len(items), "items": items}).encode()
    return text


def _time(fn: Callable[[], object], budget: float = 0.25) -> float:
    """Seconds per call: the best of 5 rounds of at least ``budget / 5`` seconds each.

    The best round, as ``timeit`` advises: on a shared machine the others measure the neighbours.
    """
    fn()
    rounds = []
    for _ in range(5):
        count, started = 0, time.perf_counter()
        while True:
            fn()
            count += 1
            elapsed = time.perf_counter() - started
            if elapsed >= budget / 5:
                break
        rounds.append(elapsed / count)
    return min(rounds)


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def deflate_codecs() -> dict[str, Callable[[bytes, int], bytes]]:
    """gzip (wbits=31) one-shot compressors by implementation name."""
    found: dict[str, Callable[[bytes, int], bytes]] = {}
    modules = {"zlib": zlib, "isal": _optional("isal.isal_zlib"), "zlib-ng": _optional("zlib_ng.zlib_ng")}
    for label, module in modules.items():
        if module is None:
            continue

        def gz(data: bytes, level: int, module=module) -> bytes:
            c = module.compressobj(level, module.DEFLATED, 31)
            return c.compress(data) + c.flush()

        found[label] = gz
    return found


def all_cases() -> list[tuple[str, int, Callable[[bytes], bytes]]]:
    cases: list[tuple[str, int, Callable[[bytes], bytes]]] = []
    levels = {"zlib": (1, 2, 4, 6, 9), "isal": (0, 1, 2, 3), "zlib-ng": (1, 2, 4, 6, 9)}
    for label, gz in deflate_codecs().items():
        for level in levels[label]:
            cases.append((f"gzip/{label}", level, lambda d, gz=gz, lv=level: gz(d, lv)))
    brotli = _optional("brotli")
    if brotli is not None:
        for level in (0, 1, 2, 4, 5, 6, 9, 11):
            cases.append(("br", level, lambda d, lv=level: brotli.compress(d, quality=lv)))
    zstandard = _optional("zstandard")
    if zstandard is not None:
        for level in (-1, 1, 3, 6, 10, 19):
            compressor = zstandard.ZstdCompressor(level=level)
            cases.append(("zstd", level, lambda d, c=compressor: c.compress(d)))
    return cases


def bench_codecs(doc: bytes) -> None:
    print(f"## codecs: one-shot, {len(doc):,} byte JSON document, one core\n")
    print("| codec | level | MB/s | ratio | compressed bytes | µs per body |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, level, fn in all_cases():
        seconds = _time(lambda: fn(doc), budget=0.4 if level < 11 else 1.0)
        size = len(fn(doc))
        print(
            f"| {name} | {level} | {len(doc) / seconds / 1e6:,.0f} | {len(doc) / size:.2f}"
            f" | {size:,} | {seconds * 1e6:,.0f} |"
        )
    print()


async def _to_thread_cost() -> float:
    """Median wall time of ``await asyncio.to_thread(noop)`` on a running loop."""
    samples = []
    for _ in range(2000):
        started = time.perf_counter()
        await asyncio.to_thread(int)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def _serve_load(
    compress: Callable[[bytes], bytes], body: bytes, offload: bool, seconds: float
) -> tuple[float, float]:
    """16 tasks compress ``body`` in a loop for ``seconds`` while a ticker measures loop lag.

    Returns (bodies per second, worst lag of a 1 ms timer in ms): what a server with many
    requests for big bodies would see, the throughput and how late everything else gets.
    """
    deadline = time.perf_counter() + seconds
    done = 0
    worst = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if offload:
                await asyncio.to_thread(compress, body)
            else:
                compress(body)
                await asyncio.sleep(0)
            done += 1

    async def ticker() -> None:
        nonlocal worst
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - started - 0.001)

    started = time.perf_counter()
    await asyncio.gather(ticker(), *(worker() for _ in range(16)))
    return done / (time.perf_counter() - started), worst * 1000


def _default_algorithms() -> list:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import aeros_compress

    algorithms = [aeros_compress.Gzip(), aeros_compress.Gzip(backend="zlib")]
    for name in ("Br", "Zstd"):
        try:
            algorithms.append(getattr(aeros_compress, name)())
        except ImportError:
            pass
    return algorithms


def bench_offload() -> None:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))

    hop = asyncio.run(_to_thread_cost())
    print(f"## offload: asyncio.to_thread round trip (no-op): {hop * 1e6:.0f} µs median\n")
    print(
        "| codec (default level) | body bytes | compress µs | on loop: bodies/s | worst lag ms"
        " | to_thread: bodies/s | worst lag ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for algorithm in _default_algorithms():
        for size in (4_000, 16_000, 64_000, 128_000, 256_000, 1_000_000):
            doc = sample_json(size, seed=size)
            seconds = _time(lambda: algorithm.compress(doc), budget=0.1)
            # best of 3 (highest throughput, lowest lag): the others measure the neighbours
            inline_runs = [asyncio.run(_serve_load(algorithm.compress, doc, False, 0.4)) for _ in range(3)]
            thread_runs = [asyncio.run(_serve_load(algorithm.compress, doc, True, 0.4)) for _ in range(3)]
            inline = (max(r for r, _ in inline_runs), min(lag for _, lag in inline_runs))
            threaded = (max(r for r, _ in thread_runs), min(lag for _, lag in thread_runs))
            print(
                f"| {algorithm!r} | {len(doc):,} | {seconds * 1e6:,.0f} | {inline[0]:,.0f} | {inline[1]:.1f}"
                f" | {threaded[0]:,.0f} | {threaded[1]:.1f} |"
            )
    print("\nthresholds now (bytes):", ", ".join(f"{a!r}: {a.offload_threshold:,}" for a in _default_algorithms()))
    print()


def bench_stream(doc: bytes) -> None:
    print("## stream: 64 chunks flushed one by one vs one shot\n")
    print("| codec | one-shot bytes | flushed-per-chunk bytes | one-shot µs | per-chunk µs |")
    print("|---|---:|---:|---:|---:|")
    algorithms = _default_algorithms()
    step = len(doc) // 64 + 1
    chunks = [doc[i : i + step] for i in range(0, len(doc), step)]

    def streamed(algorithm) -> bytes:
        stream = algorithm.stream()
        out = [stream.chunk(c) for c in chunks]
        out.append(stream.finish())
        return b"".join(out)

    for algorithm in algorithms:
        one = _time(lambda: algorithm.compress(doc))
        many = _time(lambda: streamed(algorithm))
        print(
            f"| {algorithm!r} | {len(algorithm.compress(doc)):,} | {len(streamed(algorithm)):,}"
            f" | {one * 1e6:,.0f} | {many * 1e6:,.0f} |"
        )
    print()


def bench_middleware(doc: bytes) -> None:
    """Microseconds per response through ``CompressMiddleware`` (no network, no server)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from aeros_compress import Br, Gzip
    from aeros_compress.middleware import CompressMiddleware
    from aeros_compress.variants import VariantCache

    def inner_app(body: bytes, headers: list) -> Callable:
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode()), *headers],
        }
        end = {"type": "http.response.body", "body": body}

        async def app(scope: dict, receive: object, send: Callable) -> None:
            await send(start)
            await send(end)

        return app

    async def sink(message: dict) -> None:
        return None

    def scope(accept: bytes | None) -> dict:
        headers = [(b"host", b"x"), (b"user-agent", b"bench")]
        if accept is not None:
            headers.append((b"accept-encoding", accept))
        return {"type": "http", "method": "GET", "path": "/doc", "query_string": b"", "headers": headers}

    json_type = (b"content-type", b"application/json")
    cases = [
        ("no middleware, 60 KB", None, inner_app(doc, [json_type]), b"gzip, br"),
        (
            "13 B text/plain (under min_size)",
            "m",
            inner_app(b"Hello, World!", [(b"content-type", b"text/plain")]),
            b"gzip, br",
        ),
        ("60 KB, no Accept-Encoding (identity + Vary)", "m", inner_app(doc, [json_type]), None),
        ("60 KB image/png (not listed)", "m", inner_app(doc, [(b"content-type", b"image/png")]), b"gzip, br"),
        ("60 KB -> br 4, no ETag", "m", inner_app(doc, [json_type]), b"gzip, br"),
        ("60 KB -> gzip 2, no ETag", "m", inner_app(doc, [json_type]), b"gzip"),
        ("60 KB -> br 4, strong ETag, LRU hit", "m", inner_app(doc, [json_type, (b"etag", b'"v1"')]), b"gzip, br"),
        ("60 KB -> gzip 2, strong ETag, LRU hit", "m", inner_app(doc, [json_type, (b"etag", b'"v1"')]), b"gzip"),
    ]
    print("## middleware: µs per response, in process (no server, no network)\n")
    print("| case | µs per response |")
    print("|---|---:|")
    for label, wrapped, app, accept in cases:
        entry = app if wrapped is None else CompressMiddleware(app, [Br(), Gzip()], VariantCache(8 << 20))
        request = scope(accept)

        async def many(n: int = 200) -> None:
            for _ in range(n):
                await entry(request, None, sink)

        seconds = _time(lambda: asyncio.run(many()), budget=0.5) / 200
        print(f"| {label} | {seconds * 1e6:,.1f} |")
    print()


def main(argv: list[str]) -> None:
    doc = sample_json()
    what = argv[1:] or ["codecs", "offload", "stream", "middleware"]
    print(f"python {sys.version.split()[0]}, zlib {zlib.ZLIB_RUNTIME_VERSION}\n")
    if "codecs" in what:
        bench_codecs(doc)
    if "offload" in what:
        bench_offload()
    if "stream" in what:
        bench_stream(doc)
    if "middleware" in what:
        bench_middleware(doc)


if __name__ == "__main__":
    main(sys.argv)
