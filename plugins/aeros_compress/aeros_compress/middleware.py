"""The ASGI middleware that applies the content coding to every HTTP response.

It sits at ``Stage.ENCODE``, outside everything that makes a body (views, error pages,
streaming responses, cache hits answered at the ASGI edge), so each of them is handled once,
here. Per response it decides, from the ``http.response.start`` message:

1. pass untouched: 1xx, 204, 206, 304, no Content-Type, already Content-Encoding'd,
   ``Cache-Control: no-transform``, a mimetype no algorithm lists, or a known length that is
   zero or under every algorithm's ``min_size``;
2. otherwise the response is *compressible*: it gets ``Vary: Accept-Encoding`` even when it is
   then sent as identity (HEAD, ``Range`` requests, nothing acceptable to the client);
3. with a known ``Content-Length`` the body is collected and compressed in one go (off the
   event loop when it is large for its codec, see ``codecs.OFFLOAD_BUDGET_US``; taken from
   the variant LRU when it has a strong ETag);
4. without one (generators, server-sent events) each chunk is compressed and flushed as it
   comes, so the client can decode it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Sequence

from .codecs import Algorithm, Stream
from .negotiate import rank
from .variants import VariantCache

Send = Callable[[dict], Awaitable[None]]

#: Bodies with a Content-Length above this are streamed (chunk by chunk) instead of collected.
BUFFER_LIMIT = 8 * 1024 * 1024

#: Response extensions under which a body never passes through ``send`` as bytes.
_FILE_EXTENSIONS = ("http.response.zerocopysend", "http.response.pathsend")

_START, _PASS, _BUFFER, _STREAM = range(4)
_NO_BODY_STATUS = frozenset((204, 206, 304))
_DROPPED_WHEN_ENCODED = frozenset((b"content-length", b"content-encoding", b"accept-ranges"))
_VARY = (b"vary", b"Accept-Encoding")


class CompressMiddleware:
    """ASGI middleware: negotiates and applies one of ``algorithms`` to each HTTP response.

    Args:
        app: the ASGI app to wrap.
        algorithms: in server preference order (the first wins ties between q-values).
        variants: LRU of compressed bodies for responses with a strong ETag, or ``None``.
        offload_threshold: bodies (or stream chunks) at least this large are compressed in a
            worker thread; ``None``: each algorithm's own ``offload_threshold``, from measurements.
        buffer_limit: responses with a larger Content-Length are compressed as a stream.
    """

    def __init__(
        self,
        app: Any,
        algorithms: Sequence[Algorithm],
        variants: VariantCache | None = None,
        offload_threshold: int | None = None,
        buffer_limit: int = BUFFER_LIMIT,
    ) -> None:
        if not algorithms:
            raise ValueError("CompressMiddleware needs at least one algorithm")
        self.app = app
        self.algorithms = tuple(algorithms)
        self.offered = tuple(a.encoding for a in self.algorithms)
        self.variants = variants
        self.offload_threshold = offload_threshold
        self.buffer_limit = buffer_limit
        self._rankings: dict[bytes, tuple[int, ...]] = {}
        self._accepting: dict[bytes, tuple[int, ...]] = {}

    async def __call__(self, scope: dict, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        exchange = _Exchange(self, scope, send)
        await self.app(exchange.scope, receive, exchange.send)
        if exchange.mode == _BUFFER:  # the app ended without finishing its body: hand on what it sent
            await exchange.give_up()

    # --- per-app lookups, cached (bounded) because the same few values repeat -----------------

    def ranking(self, accept: bytes | None) -> tuple[int, ...]:
        """Indexes of the algorithms this ``Accept-Encoding`` accepts, best first."""
        if accept is None:
            return ()
        ranking = self._rankings.get(accept)
        if ranking is None:
            ranking = rank(accept.decode("latin-1"), self.offered)
            if len(self._rankings) >= 512:  # header values come from clients: keep it bounded
                self._rankings.clear()
            self._rankings[accept] = ranking
        return ranking

    def accepting(self, mimetype: bytes) -> tuple[int, ...]:
        """Indexes of the algorithms whose mimetypes include ``mimetype``."""
        accepting = self._accepting.get(mimetype)
        if accepting is None:
            text = mimetype.decode("latin-1")
            accepting = tuple(i for i, a in enumerate(self.algorithms) if a.matches(text))
            if len(self._accepting) >= 256:
                self._accepting.clear()
            self._accepting[mimetype] = accepting
        return accepting

    async def encode(self, algorithm: Algorithm, body: bytes, key: Any) -> bytes:
        """``body`` compressed: from the variant LRU, on the loop, or in a thread if large."""
        variants = self.variants
        if key is not None and variants is not None:
            cached = variants.get(key, len(body))
            if cached is not None:
                return cached
        if len(body) >= (self.offload_threshold or algorithm.offload_threshold):
            encoded = await asyncio.to_thread(algorithm.compress, body)
        else:
            encoded = algorithm.compress(body)
        if key is not None and variants is not None:
            variants.put(key, len(body), encoded)
        return encoded


class _Exchange:
    """One HTTP request/response passing through the middleware."""

    __slots__ = (
        "mw", "scope", "downstream", "accept", "head", "ranged", "if_none_match", "mode",
        "algorithm", "start", "parts", "size", "stream", "etag", "vary_done",
    )

    def __init__(self, mw: CompressMiddleware, scope: dict, send: Send) -> None:
        self.mw = mw
        self.downstream = send
        self.mode = _START
        accept: bytes | None = None
        ranged = False
        if_none_match = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value
            elif name == b"range":
                ranged = True
            elif name == b"if-none-match":
                if_none_match = value
        self.accept = accept
        self.ranged = ranged
        self.head = scope["method"] == "HEAD"
        self.if_none_match = if_none_match
        extensions = scope.get("extensions")
        if extensions and accept is not None and any(e in extensions for e in _FILE_EXTENSIONS):
            # a body sent as a file path never passes through send(): ask for bytes instead
            scope = dict(scope)
            scope["extensions"] = {k: v for k, v in extensions.items() if k not in _FILE_EXTENSIONS}
        self.scope = scope
        self.algorithm: Algorithm | None = None
        self.start: dict | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.stream: Stream | None = None
        self.etag: bytes | None = None  # the response's strong ETag, if any
        self.vary_done = False  # the response already varies on Accept-Encoding (or on *)

    async def send(self, message: dict) -> None:
        mode = self.mode
        if mode == _PASS:
            return await self.downstream(message)
        kind = message["type"]
        if mode == _START:
            if kind == "http.response.start":
                return await self.on_start(message)
            return await self.downstream(message)
        if kind != "http.response.body":
            return await self.downstream(message)
        if mode == _BUFFER:
            return await self.on_buffered_body(message)
        return await self.on_stream_body(message)

    # --- the decision ------------------------------------------------------------------------

    async def on_start(self, message: dict) -> None:
        status = message["status"]
        headers = message.get("headers") or ()
        if not isinstance(headers, (list, tuple)):  # any iterable is allowed: read it once
            headers = list(headers)
            message = {**message, "headers": headers}
        if status < 200 or status in _NO_BODY_STATUS:
            self.mode = _PASS
            if status == 304 and self.if_none_match is not None:
                message = self.echo_weak_etag(message, headers)
            return await self.downstream(message)

        content_type = length = etag = None
        vary_done = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"etag":
                etag = value
            elif name == b"content-encoding":
                if value.strip().lower() != b"identity":
                    return await self.pass_on(message)
            elif name == b"cache-control":
                if b"no-transform" in value.lower():
                    return await self.pass_on(message)
            elif name == b"vary":
                tokens = [t.strip() for t in value.lower().split(b",")]
                vary_done = vary_done or b"accept-encoding" in tokens or b"*" in tokens
        if content_type is None:
            return await self.pass_on(message)
        mw = self.mw
        accepting = mw.accepting(content_type.split(b";", 1)[0].strip().lower())
        if not accepting:
            return await self.pass_on(message)
        size: int | None = None
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = None
            if size is not None:
                if size <= 0:
                    return await self.pass_on(message)
                accepting = tuple(i for i in accepting if size >= mw.algorithms[i].min_size)
                if not accepting:
                    return await self.pass_on(message)

        # compressible: the representation now depends on Accept-Encoding
        chosen = None
        if not (self.head or self.ranged):
            for index in mw.ranking(self.accept):
                if index in accepting:
                    chosen = mw.algorithms[index]
                    break
        if chosen is None:
            if not vary_done:
                message = {**message, "headers": [*headers, _VARY]}
            return await self.pass_on(message)

        self.algorithm = chosen
        self.start = message
        self.etag = etag if etag is not None and etag.startswith(b'"') else None
        self.vary_done = vary_done
        if size is not None and size <= mw.buffer_limit:
            self.mode = _BUFFER
            return
        await self.begin_stream()

    async def pass_on(self, message: dict) -> None:
        self.mode = _PASS
        await self.downstream(message)

    def encoded_start(self, length: int | None) -> dict:
        """The held start message, turned into the encoded representation's."""
        start = self.start
        assert start is not None and self.algorithm is not None
        headers = []
        for name, value in start.get("headers") or ():
            lower = name.lower()
            if lower in _DROPPED_WHEN_ENCODED:
                continue
            if lower == b"etag" and value.startswith(b'"'):
                value = b"W/" + value  # the encoded bytes differ: only a weak validator still holds
            headers.append((name, value))
        headers.append((b"content-encoding", self.algorithm.encoding.encode()))
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        if not self.vary_done:
            headers.append(_VARY)
        return {**start, "headers": headers}

    def identity_start(self) -> dict:
        start = self.start
        assert start is not None
        if self.vary_done:
            return start
        return {**start, "headers": [*(start.get("headers") or ()), _VARY]}

    # --- a body of known length: collect, compress once -------------------------------------

    async def on_buffered_body(self, message: dict) -> None:
        body = message.get("body", b"")
        if body:
            self.parts.append(body)
            self.size += len(body)
        if message.get("more_body", False):
            if self.size > self.mw.buffer_limit:
                await self.begin_stream()
                await self.on_stream_body({"type": "http.response.body", "body": b"", "more_body": True})
            return
        parts = self.parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self.parts = []
        self.mode = _PASS
        algorithm = self.algorithm
        assert algorithm is not None
        if len(body) < algorithm.min_size or not body:
            await self.downstream(self.identity_start())
            return await self.downstream({"type": "http.response.body", "body": body, "more_body": False})
        key = None
        if self.etag is not None:
            scope = self.scope
            key = (scope["path"], scope.get("query_string", b""), self.etag, algorithm.variant_key)
        encoded = await self.mw.encode(algorithm, body, key)
        if len(encoded) >= len(body):  # incompressible: the original is the smaller answer
            await self.downstream(self.identity_start())
            return await self.downstream({"type": "http.response.body", "body": body, "more_body": False})
        await self.downstream(self.encoded_start(len(encoded)))
        await self.downstream({"type": "http.response.body", "body": encoded, "more_body": False})

    async def give_up(self) -> None:
        self.mode = _PASS
        await self.downstream(self.identity_start())
        body = b"".join(self.parts)
        self.parts = []
        await self.downstream({"type": "http.response.body", "body": body, "more_body": False})

    # --- a body of unknown length: compress and flush chunk by chunk --------------------------

    async def begin_stream(self) -> None:
        assert self.algorithm is not None
        self.mode = _STREAM
        self.stream = self.algorithm.stream()
        await self.downstream(self.encoded_start(None))
        if self.parts:
            pending = b"".join(self.parts)
            self.parts = []
            self.size = 0
            await self.on_stream_body({"type": "http.response.body", "body": pending, "more_body": True})

    async def on_stream_body(self, message: dict) -> None:
        stream = self.stream
        assert stream is not None
        body = message.get("body", b"")
        more = message.get("more_body", False)
        out = b""
        if body:
            assert self.algorithm is not None
            if len(body) >= (self.mw.offload_threshold or self.algorithm.offload_threshold):
                out = await asyncio.to_thread(stream.chunk, body)
            else:
                out = stream.chunk(body)
        if not more:
            out += stream.finish()
            self.mode = _PASS
        elif not out:
            return
        await self.downstream({"type": "http.response.body", "body": out, "more_body": more})

    # --- validators -------------------------------------------------------------------------

    def echo_weak_etag(self, message: dict, headers: Any) -> dict:
        """On a 304, give back the weak ETag the client holds if it got the encoded variant."""
        assert self.if_none_match is not None
        tokens = [t.strip() for t in self.if_none_match.split(b",")]
        new_headers = []
        changed = False
        for name, value in headers:
            if name.lower() == b"etag" and value.startswith(b'"') and value not in tokens:
                if b"W/" + value in tokens or b"w/" + value in tokens:
                    value = b"W/" + value
                    changed = True
            new_headers.append((name, value))
        if not changed:
            return message
        if not any(name.lower() == b"vary" for name, _ in new_headers):
            new_headers.append(_VARY)
        return {**message, "headers": new_headers}
