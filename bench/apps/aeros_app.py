"""The aeros bench app: cache and compression plugins when installed, "n/a" scenarios otherwise.

Run: PORT=8000 SERVER=hypercorn WORKERS=1 ACCESS_LOG=0 [BARE=1] [GZIP_LEVEL=6] python aeros_app.py
A scenario whose plugin is missing is not routed (404), which the harness reports as "n/a".
"""

from __future__ import annotations

import asyncio
import os
import sys

from common import BIG, HELLO, SMALL, VIEW_SECONDS

from aeros import WebServer


def plugin_keywords() -> dict:
    keywords: dict = {}
    if os.environ.get("BARE") == "1":  # the core alone: no cache, no compression
        return keywords
    try:
        from aeros import SimpleCache

        keywords["cache"] = SimpleCache()
    except Exception as error:  # the cache plugin is not there (yet)
        print(f"aeros bench app: no cache ({error})", file=sys.stderr)
    try:
        from aeros import Br, Gzip

        # gzip first: with aeros[speed] (isal) it is several times faster than br 4 at a similar
        # size, and it is what the peers send, so /big compares like for like.
        level = os.environ.get("GZIP_LEVEL")  # like for like with the peers' gzip 6 when set
        keywords["compression"] = [Gzip(level=int(level)) if level else Gzip(), Br()]
    except Exception as error:
        print(f"aeros bench app: no compression ({error})", file=sys.stderr)
    return keywords


def build() -> WebServer:
    keywords = plugin_keywords()  # SERVER=granian needs the aeros-granian plugin (an entry point)
    while True:
        try:
            return WebServer(__name__, **keywords)
        except Exception as error:  # a keyword the installed plugins do not take yet
            dropped = next((name for name in keywords if name in str(error)), None)
            if dropped is None:
                raise
            print(f"aeros bench app: dropping {dropped}= ({error})", file=sys.stderr)
            del keywords[dropped]


app = build()
HAS_CACHE = "cache" in app.options and app.options["cache"] is not None and hasattr(app, "cache")
HAS_COMPRESSION = "compression" in app.options and app.options["compression"] is not None


@app.route("/hello")
async def hello():
    return HELLO


@app.route("/json")
async def json_view():
    return SMALL


if HAS_COMPRESSION:

    @app.route("/big")
    async def big():
        return BIG


if HAS_CACHE and HAS_COMPRESSION:

    @app.route("/big-cached")
    @app.cache(timeout=60)
    async def big_cached():
        return BIG


if HAS_CACHE:

    @app.route("/cached")
    @app.cache(timeout=60)
    async def cached():
        await asyncio.sleep(VIEW_SECONDS)
        return "expensive result for /cached"


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        workers=int(os.environ.get("WORKERS", "1")),
        server=os.environ.get("SERVER", "hypercorn"),
        access_log_to_std=os.environ.get("ACCESS_LOG", "0") == "1",
        log_level="WARNING",
    )
