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

Fast path: when the request rules out every encoding before the app runs (no
``Accept-Encoding``, nothing acceptable in it, HEAD, ``Range``), the response can only go out
as identity, so ``send`` is wrapped by a small function that looks at the start message alone
(to add ``Vary`` to compressible responses) and forwards everything else untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .codecs import Algorithm, Stream
from .negotiate import rank
from .variants import VariantCache

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Bodies with a Content-Length above this are streamed (chunk by chunk) instead of collected.
BUFFER_LIMIT = 8 * 1024 * 1024

#: Response extensions under which a body never passes through ``send`` as bytes.
_FILE_EXTENSIONS = ("http.response.zerocopysend", "http.response.pathsend")

_START, _PASS, _BUFFER, _STREAM = range(4)
_NO_BODY_STATUS = frozenset((204, 206, 304))
_DROPPED_WHEN_ENCODED = frozenset((b"content-length", b"content-encoding", b"accept-ranges"))
_VARY = (b"vary", b"Accept-Encoding")
#: the request headers the middleware reads
_REQUEST_HEADERS = frozenset((b"accept-encoding", b"range", b"if-none-match"))
#: the response headers the decision reads, by lowercase name
_CONTENT_TYPE, _CONTENT_LENGTH, _ETAG, _CONTENT_ENCODING, _CACHE_CONTROL, _VARY_HEADER = range(6)
_RESPONSE_HEADERS = {
    b"content-type": _CONTENT_TYPE,
    b"content-length": _CONTENT_LENGTH,
    b"etag": _ETAG,
    b"content-encoding": _CONTENT_ENCODING,
    b"cache-control": _CACHE_CONTROL,
    b"vary": _VARY_HEADER,
}


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
        #: no body shorter than this is ever compressed
        self.min_size = min(a.min_size for a in self.algorithms)
        self._rankings: dict[bytes, tuple[int, ...]] = {}
        #: ``on_encoded(scope, encoding, bytes_in, bytes_out)`` after each encoded response, or None
        self.on_encoded: Callable[[dict[str, Any], str, int, int], None] | None = None
        self._accepting: dict[bytes, tuple[int, ...]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept: bytes | None = None
        ranged = False
        if_none_match = None
        for name, value in scope["headers"]:
            if name not in _REQUEST_HEADERS:
                continue
            if name == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value
            elif name == b"range":
                ranged = True
            elif name == b"if-none-match":
                if_none_match = value
        ranking = self.ranking(accept)
        if not ranking or ranged or scope["method"] == "HEAD":
            # identity whatever the response: only Vary may need adding, to the start message
            await self.app(scope, receive, self.identity_send(send, if_none_match))
            return
        exchange = _Exchange(self, scope, send, ranking, if_none_match)
        await self.app(exchange.scope, receive, exchange.send)
        if exchange.mode == _BUFFER:  # the app ended without finishing its body: hand on what it sent
            await exchange.give_up()

    def identity_send(self, send: Send, if_none_match: bytes | None) -> Send:
        """``send`` for a response that will not be encoded: adds ``Vary`` where it belongs.

        A plain function returning ``send``'s own awaitable: the app's ``await send(...)``
        awaits the server's send directly, with no coroutine of ours in between.
        """
        started = False

        def identity(message: dict[str, Any]) -> Awaitable[None]:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                message, compressible = self.inspect_start(message, if_none_match)
                if compressible is not None and not compressible[3]:
                    message = {**message, "headers": [*message["headers"], _VARY]}
            return send(message)

        return identity

    def inspect_start(
        self, message: dict[str, Any], if_none_match: bytes | None
    ) -> tuple[dict[str, Any], tuple[Any, ...] | None]:
        """Read a ``http.response.start`` message once.

        Returns the message (its headers made a list; a 304's ETag echoed weak where the client
        holds the weak one) and, for a compressible response, ``(accepting, size, etag,
        vary_done)``: the indexes of the algorithms that suit it, its Content-Length (or
        ``None``), its ETag and whether it already varies on Accept-Encoding. ``None`` for a
        response that passes untouched, without ``Vary``.
        """
        status = message["status"]
        headers = message.get("headers") or ()
        if not isinstance(headers, (list, tuple)):  # any iterable is allowed: read it once
            headers = list(headers)
            message = {**message, "headers": headers}
        if status < 200 or status in _NO_BODY_STATUS:
            if status == 304 and if_none_match is not None:
                message = echo_weak_etag(message, headers, if_none_match)
            return message, None
        content_type = etag = size = None
        vary_done = False
        kinds = _RESPONSE_HEADERS
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:  # not one of these, unless written with capitals
                if name.islower() or (kind := kinds.get(name.lower())) is None:
                    continue
            if kind == _CONTENT_TYPE:
                content_type = value
            elif kind == _CONTENT_LENGTH:
                try:
                    size = int(value)
                except ValueError:
                    size = None
                else:
                    if size <= 0 or size < self.min_size:
                        return message, None  # empty, or under every algorithm's min_size
            elif kind == _ETAG:
                etag = value
            elif kind == _CONTENT_ENCODING:
                if value.strip().lower() != b"identity":
                    return message, None
            elif kind == _CACHE_CONTROL:
                if b"no-transform" in value.lower():
                    return message, None
            else:  # Vary
                tokens = [t.strip() for t in value.lower().split(b",")]
                vary_done = vary_done or b"accept-encoding" in tokens or b"*" in tokens
        if content_type is None:
            return message, None
        accepting = self.accepting(content_type)
        if not accepting:
            return message, None
        if size is not None:
            algorithms = self.algorithms
            accepting = tuple(i for i in accepting if size >= algorithms[i].min_size)
            if not accepting:
                return message, None
        return message, (accepting, size, etag, vary_done)

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

    def accepting(self, content_type: bytes) -> tuple[int, ...]:
        """Indexes of the algorithms whose mimetypes include this Content-Type's mimetype
        (cached per raw header value, parameters included: the same few values repeat)."""
        accepting = self._accepting.get(content_type)
        if accepting is None:
            text = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
            accepting = tuple(i for i, a in enumerate(self.algorithms) if a.matches(text))
            if len(self._accepting) >= 256:
                self._accepting.clear()
            self._accepting[content_type] = accepting
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


async def _nothing() -> None:
    """The awaitable ``send`` returns for a message the middleware holds."""


class _Exchange:
    """One HTTP request/response passing through the middleware."""

    __slots__ = (
        "mw",
        "scope",
        "downstream",
        "ranking",
        "if_none_match",
        "mode",
        "algorithm",
        "start",
        "parts",
        "size",
        "stream",
        "etag",
        "vary_done",
        "consumed",
        "produced",
    )

    def __init__(
        self,
        mw: CompressMiddleware,
        scope: dict[str, Any],
        send: Send,
        ranking: tuple[int, ...],
        if_none_match: bytes | None,
    ) -> None:
        """For a request (not HEAD, no ``Range``) whose Accept-Encoding accepts ``ranking``."""
        self.mw = mw
        self.downstream = send
        self.mode = _START
        self.ranking = ranking
        self.if_none_match = if_none_match
        extensions = scope.get("extensions")
        if extensions and not extensions.keys().isdisjoint(_FILE_EXTENSIONS):
            # a body sent as a file path never passes through send(): ask for bytes instead
            scope = dict(scope)
            scope["extensions"] = {k: v for k, v in extensions.items() if k not in _FILE_EXTENSIONS}
        self.scope = scope
        # set by on_start once the response is to be encoded (unset before: nothing reads them):
        # algorithm, start (the held start message), parts and size (the body collected so far),
        # stream, etag (the response's strong ETag or None), vary_done (it already varies on
        # Accept-Encoding, or on *)
        self.algorithm: Algorithm | None
        self.start: dict[str, Any] | None
        self.parts: list[bytes]
        self.size: int
        self.stream: Stream | None
        self.etag: bytes | None
        self.vary_done: bool

    def send(self, message: dict[str, Any]) -> Awaitable[None]:
        """The app's ``send``. A message that passes untouched (everything of a response that
        is not encoded, its start message included) gets the server's own awaitable back, so
        it costs no coroutine of ours."""
        mode = self.mode
        if mode == _PASS:
            return self.downstream(message)
        if mode == _START:
            if message["type"] != "http.response.start":
                return self.downstream(message)
            passed = self.on_start(message)
            if passed is not None:
                return self.downstream(passed)
            return self.begin_stream() if self.mode == _STREAM else _nothing()
        return self.handle(message)

    async def handle(self, message: dict[str, Any]) -> None:
        """A message of a response being encoded (buffered or streamed)."""
        mode = self.mode
        if message["type"] != "http.response.body":
            return await self.downstream(message)
        if mode == _BUFFER:
            return await self.on_buffered_body(message)
        return await self.on_stream_body(message)

    # --- the decision ------------------------------------------------------------------------

    def on_start(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Decide: the message to send now (passing on), or ``None`` (held: buffer or stream)."""
        mw = self.mw
        message, compressible = mw.inspect_start(message, self.if_none_match)
        self.mode = _PASS
        if compressible is None:
            return message
        accepting, size, etag, vary_done = compressible
        chosen = None
        for index in self.ranking:
            if index in accepting:
                chosen = mw.algorithms[index]
                break
        if chosen is None:  # compressible, but not with anything this client takes: identity + Vary
            if vary_done:
                return message
            return {**message, "headers": [*message["headers"], _VARY]}
        self.algorithm = chosen
        self.start = message
        self.parts = []
        self.size = 0
        self.stream = None
        self.etag = etag if etag is not None and etag.startswith(b'"') else None
        self.vary_done = vary_done
        self.mode = _BUFFER if size is not None and size <= mw.buffer_limit else _STREAM
        return None

    def encoded_start(self, length: int | None) -> dict[str, Any]:
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

    def identity_start(self) -> dict[str, Any]:
        start = self.start
        assert start is not None
        if self.vary_done:
            return start
        return {**start, "headers": [*(start.get("headers") or ()), _VARY]}

    # --- a body of known length: collect, compress once -------------------------------------

    async def on_buffered_body(self, message: dict[str, Any]) -> None:
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
        on_encoded = self.mw.on_encoded
        if on_encoded is not None:  # before the last message: observers may end their request there
            on_encoded(self.scope, algorithm.encoding, len(body), len(encoded))
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
        self.consumed = self.produced = 0
        await self.downstream(self.encoded_start(None))
        if self.parts:
            pending = b"".join(self.parts)
            self.parts = []
            self.size = 0
            await self.on_stream_body({"type": "http.response.body", "body": pending, "more_body": True})

    async def on_stream_body(self, message: dict[str, Any]) -> None:
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
        self.consumed += len(body)
        if not more:
            out += stream.finish()
            self.mode = _PASS
        elif not out:
            return
        self.produced += len(out)
        if not more and self.mw.on_encoded is not None:  # before the last message, as above
            assert self.algorithm is not None
            self.mw.on_encoded(self.scope, self.algorithm.encoding, self.consumed, self.produced)
        await self.downstream({"type": "http.response.body", "body": out, "more_body": more})


def echo_weak_etag(message: dict[str, Any], headers: Any, if_none_match: bytes) -> dict[str, Any]:
    """On a 304, give back the weak ETag the client holds if it got the encoded variant."""
    tokens = [t.strip() for t in if_none_match.split(b",")]
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
