"""Litestar with its gzip compression config (level 9, minimum 500 bytes, as Starlette's
defaults); dict cache by hand."""

from __future__ import annotations

import asyncio

from common import BIG, HELLO, SMALL, VIEW_SECONDS, TinyCache
from litestar import Litestar, Request, Response, get
from litestar.config.compression import CompressionConfig

cache = TinyCache()


@get("/hello", sync_to_thread=False)
def hello() -> str:
    return HELLO


@get("/json", sync_to_thread=False)
def json_view() -> dict:
    return SMALL


@get("/big", sync_to_thread=False)
def big() -> dict:
    return BIG


@get("/big-cached")
async def big_cached(request: Request) -> Response:
    body = cache.get(request.url.path)
    if body is None:
        body = Response(BIG).render(BIG, "application/json")
        cache.set(request.url.path, body)
    return Response(body, media_type="application/json")  # the compression config compresses


@get("/cached")
async def cached(request: Request) -> str:
    body = cache.get(request.url.path)
    if body is None:
        await asyncio.sleep(VIEW_SECONDS)
        body = f"expensive result for {request.url.path}"
        cache.set(request.url.path, body)
    return body


app = Litestar(
    route_handlers=[hello, json_view, big, cached, big_cached],
    compression_config=CompressionConfig(backend="gzip", gzip_compress_level=9, minimum_size=500),
    logging_config=None,
)
