"""A raw ASGI app: the ceiling any framework on the same server can reach.

/big is gzip-compressed by hand (level 6); /cached is a dict lookup after the first miss;
/big-cached keeps the gzip bytes (and the identity bytes) in the dict.
"""

from __future__ import annotations

import asyncio
import json

from common import BIG, HELLO, SMALL, VIEW_SECONDS, TinyCache, gzip_body, wants_gzip

cache = TinyCache()
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON = [(b"content-type", b"application/json")]


async def respond(send, body: bytes, headers: list) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": headers + [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path = scope["path"]
    if path == "/hello":
        return await respond(send, HELLO.encode(), TEXT)
    if path == "/json":
        return await respond(send, json.dumps(SMALL).encode(), JSON)
    if path == "/big":
        body = json.dumps(BIG).encode()
        accept = next((v.decode() for k, v in scope["headers"] if k == b"accept-encoding"), None)
        if wants_gzip(accept):
            return await respond(
                send, gzip_body(body), JSON + [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
            )
        return await respond(send, body, JSON)
    if path == "/big-cached":
        accept = next((v.decode() for k, v in scope["headers"] if k == b"accept-encoding"), None)
        key = path + (":gzip" if wants_gzip(accept) else "")
        body = cache.get(key)
        if body is None:
            body = json.dumps(BIG).encode()
            body = gzip_body(body) if wants_gzip(accept) else body
            cache.set(key, body)
        if wants_gzip(accept):
            return await respond(send, body, JSON + [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")])
        return await respond(send, body, JSON)
    if path == "/cached":
        body = cache.get(path)
        if body is None:
            await asyncio.sleep(VIEW_SECONDS)
            body = f"expensive result for {path}".encode()
            cache.set(path, body)
        return await respond(send, body, TEXT)
    await send({"type": "http.response.start", "status": 404, "headers": TEXT})
    await send({"type": "http.response.body", "body": b"not found"})
