"""Flask with Flask-Compress (its defaults) and Flask-Caching (SimpleCache), served by gunicorn (sync)."""

from __future__ import annotations

import time

from common import BIG, HELLO, SMALL, VIEW_SECONDS
from flask import Flask
from flask_caching import Cache
from flask_compress import Compress

app = Flask(__name__)
Compress(app)
cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})


@app.route("/hello")
def hello():
    return HELLO


@app.route("/json")
def json_view():
    return SMALL


@app.route("/big")
def big():
    return BIG


@app.route("/big-cached")
@cache.cached(timeout=60)
def big_cached():
    return BIG  # Flask-Compress compresses the cached response


@app.route("/cached")
@cache.cached(timeout=60)
def cached():
    time.sleep(VIEW_SECONDS)
    return "expensive result for /cached"
