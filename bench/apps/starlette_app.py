"""Starlette with its GZipMiddleware (defaults: level 9, minimum 500 bytes); dict cache by hand."""

from __future__ import annotations

import asyncio

from common import BIG, HELLO, SMALL, VIEW_SECONDS, TinyCache
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

cache = TinyCache()


async def hello(request):
    return PlainTextResponse(HELLO)


async def json_view(request):
    return JSONResponse(SMALL)


async def big(request):
    return JSONResponse(BIG)


async def big_cached(request):
    body = cache.get(request.url.path)
    if body is None:
        body = JSONResponse(BIG).body
        cache.set(request.url.path, body)
    return Response(body, media_type="application/json")  # GZipMiddleware compresses


async def cached(request):
    body = cache.get(request.url.path)
    if body is None:
        await asyncio.sleep(VIEW_SECONDS)
        body = f"expensive result for {request.url.path}"
        cache.set(request.url.path, body)
    return PlainTextResponse(body)


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/json", json_view),
        Route("/big", big),
        Route("/cached", cached),
        Route("/big-cached", big_cached),
    ],
    middleware=[Middleware(GZipMiddleware)],
)
