"""FastAPI with Starlette's GZipMiddleware (defaults); dict cache by hand (FastAPI ships none)."""

from __future__ import annotations

import asyncio

from common import BIG, HELLO, SMALL, VIEW_SECONDS, TinyCache
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response

app = FastAPI()
app.add_middleware(GZipMiddleware)
cache = TinyCache()


@app.get("/hello", response_class=PlainTextResponse)
async def hello():
    return HELLO


@app.get("/json")
async def json_view():
    return SMALL


@app.get("/big")
async def big():
    return BIG


@app.get("/big-cached")
async def big_cached(request: Request):
    body = cache.get(request.url.path)
    if body is None:
        body = JSONResponse(BIG).body
        cache.set(request.url.path, body)
    return Response(body, media_type="application/json")  # GZipMiddleware compresses


@app.get("/cached", response_class=PlainTextResponse)
async def cached(request: Request):
    body = cache.get(request.url.path)
    if body is None:
        await asyncio.sleep(VIEW_SECONDS)
        body = f"expensive result for {request.url.path}"
        cache.set(request.url.path, body)
    return body
