"""The example app the README serves: ``./dev serve`` (or ``python examples/hello/app.py``).

Two supervised workers on http://127.0.0.1:8000 with a shared file-system cache, negotiated
brotli/gzip, global and security headers, and EasyRequest. ``PORT`` and ``WORKERS`` override.
"""

import asyncio
import os
import tempfile

from aeros import Br, CacheControl, CacheTypes, EasyRequest, FileSystemCache, Gzip, WebServer

CACHE_DIR = os.environ.get("CACHE_DIR") or os.path.join(tempfile.gettempdir(), "aeros-example-cache")

app = WebServer(
    __name__,
    port=int(os.environ.get("PORT", "8000")),
    cache=FileSystemCache(CACHE_DIR),  # shared by the workers of this machine
    compression=[Br(), Gzip()],  # the client's Accept-Encoding picks
    global_headers={"X-Served-By": "aeros"},
    security_headers=True,
)


@app.route("/")
async def home():
    return {"hello": "world", "pid": os.getpid()}


@app.route("/pid")
async def pid():
    return str(os.getpid())


@app.route("/hello/<name>")
async def hello(name: str):
    return f"Hello, {name}!"


@app.route("/report")
@app.cache(timeout=30)  # the view runs once per 30 s per query string
async def report():
    await asyncio.sleep(0.2)  # stands in for a slow query
    rows = [{"row": n, "value": n * n} for n in range(500)]
    return {"rows": rows, "computed_by": os.getpid()}


@app.route("/logo")
@CacheControl(CacheTypes.PUBLIC, max_age=86400, immutable=True)
async def logo():
    return "<svg xmlns='http://www.w3.org/2000/svg'/>", 200, {"Content-Type": "image/svg+xml"}


@app.route("/search")
async def search(request: EasyRequest):
    return {"q": request.params.get("q"), "agent": request.headers.get("User-Agent")}


@app.route("/slow")
async def slow():
    await asyncio.sleep(1)
    return {"slept": 1}


if __name__ == "__main__":
    app.run(workers=int(os.environ.get("WORKERS", "2")))
