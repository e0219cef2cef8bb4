"""Plain Quart: no compression or cache of its own, so gzip (level 6) and a dict cache by hand."""

from __future__ import annotations

import asyncio
import json

from common import BIG, HELLO, MIN_COMPRESS, SMALL, VIEW_SECONDS, TinyCache, gzip_body, wants_gzip
from quart import Quart, Response, request
from quart.wrappers.response import DataBody

app = Quart(__name__)
cache = TinyCache()


@app.route("/hello")
async def hello():
    return HELLO


@app.route("/json")
async def json_view():
    return SMALL


@app.route("/big")
async def big():
    return BIG


@app.route("/big-cached")
async def big_cached():
    body = cache.get(request.path)
    if body is None:
        body = json.dumps(BIG).encode()
        cache.set(request.path, body)
    return Response(body, content_type="application/json")  # compressed by the after_request hook


@app.route("/cached")
async def cached():
    body = cache.get(request.path)
    if body is None:
        await asyncio.sleep(VIEW_SECONDS)
        body = f"expensive result for {request.path}"
        cache.set(request.path, body)
    return body


@app.after_request
async def compress(response):
    if (
        wants_gzip(request.headers.get("Accept-Encoding"))
        and isinstance(response.response, DataBody)
        and "Content-Encoding" not in response.headers
    ):
        body = await response.get_data()
        if len(body) >= MIN_COMPRESS:
            response.set_data(gzip_body(body))
            response.headers["Content-Encoding"] = "gzip"
            response.headers["Vary"] = "Accept-Encoding"
    return response
