"""Per-request cost of the aeros-headers ASGI wrapper, measured without a server.

    .venv/bin/python plugins/aeros_headers/bench_wrapper.py

Calls a trivial ASGI app 200,000 times bare and inside the wrapper (two global headers; then
global + security preset + a credentialed CORS policy with an allowed ``Origin``) and prints
microseconds per request. A routed Quart request costs a few hundred microseconds on the
same machine, so the difference is the wrapper's share.
"""

from __future__ import annotations

import asyncio
import time

from aeros_headers.cors import Cors
from aeros_headers.fields import encode_headers
from aeros_headers.middleware import RouteIndex, headers_wrapper
from aeros_headers.security import security_headers

N = 200_000
SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/",
    "scheme": "http",
    "headers": [
        (b"host", b"127.0.0.1"),
        (b"user-agent", b"bench"),
        (b"accept", b"*/*"),
        (b"origin", b"https://a.example"),
    ],
}


async def inner(scope, receive, send):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def sink(message):
    pass


def variants():
    plain = encode_headers({"X-A": "1", "X-B": "2"})
    http, https = security_headers(True)
    policy = Cors(origins=["https://a.example"], credentials=True)
    yield "bare ASGI app", inner
    yield "global_headers (2)", headers_wrapper(over_http=plain, over_https=plain, cors=None, routes=None)(inner)
    yield (
        "global + security + CORS",
        headers_wrapper(over_http=plain + http, over_https=plain + https, cors=policy, routes=None)(inner),
    )

    from aeros import WebServer

    app = WebServer(__name__, disable_plugins=["hello"])

    @app.route("/")
    @Cors(origins=["https://a.example"])
    async def home():
        return "ok"

    yield (
        "... + a @Cors route (routing at the edge)",
        headers_wrapper(over_http=plain + http, over_https=plain + https, cors=policy, routes=RouteIndex(app))(inner),
    )


async def main() -> None:
    for label, app in variants():
        started = time.perf_counter()
        for _ in range(N):
            await app(SCOPE, None, sink)
        print(f"{label:45s} {(time.perf_counter() - started) / N * 1e6:6.2f} us/request")


if __name__ == "__main__":
    asyncio.run(main())
