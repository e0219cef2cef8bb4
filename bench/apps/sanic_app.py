"""Sanic, single process: no compression or cache of its own, so gzip (level 6) and a dict cache by hand.

Run: PORT=8000 python sanic_app.py
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os

from common import BIG, HELLO, MIN_COMPRESS, SMALL, VIEW_SECONDS, TinyCache, gzip_body, wants_gzip
from sanic import Sanic
from sanic.response import HTTPResponse, json, text

app = Sanic("bench")
cache = TinyCache()


@app.get("/hello")
async def hello(request):
    return text(HELLO)


@app.get("/json")
async def json_view(request):
    return json(SMALL)


@app.get("/big")
async def big(request):
    return json(BIG)


@app.get("/big-cached")
async def big_cached(request):
    body = cache.get(request.path)
    if body is None:
        body = jsonlib.dumps(BIG).encode()
        cache.set(request.path, body)
    return HTTPResponse(body, content_type="application/json")  # compressed by the on_response hook


@app.get("/cached")
async def cached(request):
    body = cache.get(request.path)
    if body is None:
        await asyncio.sleep(VIEW_SECONDS)
        body = f"expensive result for {request.path}"
        cache.set(request.path, body)
    return text(body)


@app.on_response
async def compress(request, response):
    body = response.body
    if body and len(body) >= MIN_COMPRESS and wants_gzip(request.headers.get("accept-encoding")):
        response.body = gzip_body(body)
        response.headers["content-encoding"] = "gzip"
        response.headers["vary"] = "accept-encoding"
        response.headers["content-length"] = str(len(response.body))


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), single_process=True, access_log=False, motd=False)
