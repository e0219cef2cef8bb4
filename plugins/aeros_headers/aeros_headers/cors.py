"""CORS per the Fetch standard: one policy object, usable app-wide (``cors=``) or per route (``@Cors(...)``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, Union
from urllib.parse import urlsplit

from .fields import RawHeader, encode_header

OriginRule = Union[str, "re.Pattern[str]"]
Origins = Union[str, "re.Pattern[str]", Callable[[str], Any], Iterable[OriginRule]]
F = TypeVar("F")
log = logging.getLogger("aeros.headers")

#: Attribute a view function (or view class) carries after ``@Cors(...)``.
ROUTE_ATTRIBUTE = "__aeros_cors__"

DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
PREFLIGHT_VARY = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


def _normalise_origin(origin: str) -> str:
    """``"HTTPS://Example.com/"`` -> ``"https://example.com"``; anything with a path is an error."""
    if origin == "null":
        return origin
    if "*" in origin:
        raise ValueError(
            f"CORS origin {origin!r}: wildcards inside an origin are not supported;"
            " use re.compile(r'https://.*\\.example\\.com') or a callable"
        )
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"CORS origin {origin!r} must look like 'https://host[:port]' (no path)")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _names(value: str | Iterable[str], what: str) -> tuple[str, ...] | None:
    """``"*"`` -> ``None`` (reflect what is asked); otherwise a tuple of names."""
    if value == "*":
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    names = tuple(str(name).strip() for name in value if str(name).strip())
    for name in names:
        if name == "*":
            raise ValueError(f"CORS {what}: give '*' alone, not inside a list")
        encode_header(name, "x")  # a valid token, or ValueError
    return names


class Cors:
    """A CORS policy; also a decorator that gives one route its own policy.

    App-wide: ``WebServer(__name__, cors={"origins": [...], "credentials": True})`` (a dict of
    these keywords, a ``Cors`` instance, or ``True`` for ``origins="*"``). Per route::

        @app.route("/api/data")
        @Cors(origins=["https://app.example.com"], credentials=True)
        async def data(): ...

    A route's policy replaces the app-wide one for that route (nothing is merged);
    ``@Cors(origins=[])`` turns CORS off for a route.

    Args:
        origins: ``"*"`` (any origin), one origin, a list of origins and/or compiled regular
            expressions (matched in full against the ``Origin`` header), or a callable
            ``origin -> bool``. Only allowed origins are reflected in
            ``Access-Control-Allow-Origin``; others get no CORS headers, so the browser blocks.
        credentials: send ``Access-Control-Allow-Credentials: true`` (cookies, HTTP auth).
            Never together with ``origins="*"``: that is a ``ValueError``.
        methods: methods a preflight may ask for (GET, HEAD and POST are always allowed, as
            the Fetch standard says), or ``"*"`` to allow whatever is asked.
        headers: request headers a preflight may ask for, or ``"*"`` (the default) to allow
            the headers asked for by reflecting them.
        expose_headers: response headers the page's script may read
            (``Access-Control-Expose-Headers``).
        max_age: seconds a browser may cache a preflight answer (``None`` to not say).
    """

    def __init__(
        self,
        origins: Origins = "*",
        *,
        credentials: bool = False,
        methods: str | Iterable[str] = DEFAULT_METHODS,
        headers: str | Iterable[str] = "*",
        expose_headers: str | Iterable[str] = (),
        max_age: int | None = 600,
    ) -> None:
        self.credentials = bool(credentials)
        self.any_origin = False
        self._exact: frozenset[str] = frozenset()
        self._patterns: tuple[re.Pattern[str], ...] = ()
        self._check: Callable[[str], Any] | None = None
        self._set_origins(origins)
        if self.any_origin and self.credentials:
            raise ValueError(
                "CORS: origins='*' together with credentials=True is not allowed (browsers refuse"
                " 'Access-Control-Allow-Origin: *' with credentials); list the allowed origins"
            )
        method_names = _names(methods, "methods")
        self.methods = None if method_names is None else frozenset(m.upper() for m in method_names)
        header_names = _names(headers, "headers")
        self.headers = None if header_names is None else frozenset(h.lower() for h in header_names)
        exposed = _names(expose_headers, "expose_headers")
        if exposed is None and self.credentials:
            raise ValueError("CORS: expose_headers='*' does not work with credentials=True; list the headers")
        if max_age is not None and (isinstance(max_age, bool) or int(max_age) < 0):
            raise ValueError(f"CORS: max_age must be a number of seconds >= 0, got {max_age!r}")
        self.max_age = None if max_age is None else int(max_age)
        self.expose_headers = ("*",) if exposed is None else exposed

        self._actual_static: list[RawHeader] = []
        self._preflight_static: list[RawHeader] = []
        if self.credentials:
            self._actual_static.append((b"access-control-allow-credentials", b"true"))
            self._preflight_static.append((b"access-control-allow-credentials", b"true"))
        if self.expose_headers:
            self._actual_static.append(encode_header("Access-Control-Expose-Headers", ", ".join(self.expose_headers)))
        if self.methods is not None:
            listed = sorted(self.methods)
            self._preflight_static.append(encode_header("Access-Control-Allow-Methods", ", ".join(listed)))
        if self.max_age is not None:
            self._preflight_static.append((b"access-control-max-age", str(self.max_age).encode()))

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_setting(cls, setting: Any) -> Cors | None:
        """The ``cors=`` keyword: ``None``/``False``, ``True`` (any origin), a dict, or a ``Cors``."""
        if setting is None or setting is False:
            return None
        if setting is True:
            return cls()
        if isinstance(setting, Cors):
            return setting
        if isinstance(setting, Mapping):
            return cls(**setting)
        raise TypeError(f"cors= takes True, a dict of Cors keywords or a Cors instance, got {setting!r}")

    def _set_origins(self, origins: Origins) -> None:
        if isinstance(origins, str):
            origins = [origins]
        elif isinstance(origins, re.Pattern):
            origins = [origins]
        elif callable(origins):
            self._check = origins
            return
        exact, patterns = set(), []
        for rule in origins:
            if rule == "*":
                self.any_origin = True
            elif isinstance(rule, re.Pattern):
                patterns.append(rule)
            elif isinstance(rule, str):
                exact.add(_normalise_origin(rule))
            else:
                raise TypeError(f"CORS origins: expected a string or a compiled regex, got {rule!r}")
        self._exact = frozenset(exact)
        self._patterns = tuple(patterns)

    def __call__(self, view: F) -> F:
        """Give the decorated view (function or view class) this policy; returns it unchanged."""
        setattr(view, ROUTE_ATTRIBUTE, self)
        return view

    # --- answering -----------------------------------------------------------------------------

    @property
    def varies(self) -> bool:
        """Whether the answer depends on the ``Origin`` header (so ``Vary: Origin`` is due)."""
        return not (self.any_origin and not self.credentials)

    def allows(self, origin: str) -> bool:
        """Whether ``origin`` (the ``Origin`` header as sent) may read responses."""
        if self.any_origin:
            return True
        if origin in self._exact:
            return True
        for pattern in self._patterns:
            if pattern.fullmatch(origin):
                return True
        if self._check is not None:
            try:
                return bool(self._check(origin))
            except Exception:
                log.exception("CORS origin check %r failed for %r; origin refused", self._check, origin)
        return False

    def _allow_origin(self, origin: str, raw_origin: bytes) -> RawHeader:
        if self.any_origin and not self.credentials:
            return (b"access-control-allow-origin", b"*")
        return (b"access-control-allow-origin", raw_origin)

    def actual_headers(self, raw_origin: bytes) -> list[RawHeader]:
        """Headers for a response to a (non-preflight) request from ``raw_origin``; empty if not allowed."""
        origin = raw_origin.decode("latin-1")
        if not self.allows(origin):
            return []
        return [self._allow_origin(origin, raw_origin), *self._actual_static]

    def preflight(
        self, raw_origin: bytes, raw_method: bytes, raw_headers: bytes | None
    ) -> tuple[int, list[RawHeader], bytes]:
        """``(status, headers, body)`` answering a preflight ``OPTIONS`` request.

        Allowed: 204 with the ``Access-Control-Allow-*`` headers. Refused: 403 with a plain-text
        reason and no CORS headers, which makes the browser fail the real request.
        """
        origin = raw_origin.decode("latin-1")
        method = raw_method.decode("latin-1").strip()
        asked = [h.strip().lower() for h in (raw_headers or b"").decode("latin-1").split(",") if h.strip()]
        vary = (b"vary", PREFLIGHT_VARY)
        if not self.allows(origin):
            return _refused(f"origin {origin!r} is not allowed", vary)
        if self.methods is not None and method.upper() not in self.methods and method not in SAFELISTED_METHODS:
            return _refused(f"method {method!r} is not allowed", vary)
        if self.headers is not None:
            refused = [name for name in asked if name not in self.headers]
            if refused:
                return _refused(f"request header(s) {', '.join(refused)} not allowed", vary)
        headers = [self._allow_origin(origin, raw_origin), vary, *self._preflight_static]
        if self.methods is None:
            headers.append(encode_header("Access-Control-Allow-Methods", method))
        if asked:
            headers.append(encode_header("Access-Control-Allow-Headers", ", ".join(asked)))
        return 204, headers, b""  # no Content-Length: a 204 must not carry one (RFC 9110)

    def __repr__(self) -> str:
        if self.any_origin:
            origins: Any = "*"
        else:
            origins = sorted(self._exact) + [p.pattern for p in self._patterns]
            if self._check is not None:
                origins = self._check
        return f"Cors(origins={origins!r}, credentials={self.credentials})"


def _refused(reason: str, vary: RawHeader) -> tuple[int, list[RawHeader], bytes]:
    body = f"403 Forbidden: CORS preflight refused: {reason}.\n".encode("utf-8", "replace")
    return (
        403,
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            vary,
        ],
        body,
    )


def route_policy(view: Any) -> Cors | None:
    """The policy ``@Cors(...)`` gave a view function or its view class, if any."""
    policy = getattr(view, ROUTE_ATTRIBUTE, None)
    if policy is None:
        policy = getattr(getattr(view, "view_class", None), ROUTE_ATTRIBUTE, None)
    return policy
