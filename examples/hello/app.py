"""The example app the README serves: ``./dev serve`` (or ``python examples/hello/app.py``)."""

import asyncio
import os

from aeros import WebServer

app = WebServer(__name__, port=int(os.environ.get("PORT", "8000")))


@app.route("/")
async def home():
    return {"hello": "world", "pid": os.getpid()}


@app.route("/pid")
async def pid():
    return str(os.getpid())


@app.route("/hello/<name>")
async def hello(name: str):
    return f"Hello, {name}!"


@app.route("/slow")
async def slow():
    await asyncio.sleep(1)
    return {"slept": 1}


if __name__ == "__main__":
    app.run(workers=int(os.environ.get("WORKERS", "2")))
