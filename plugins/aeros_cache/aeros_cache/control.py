"""``CacheControl``: a view decorator writing an RFC 9111 ``Cache-Control`` response header."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

__all__ = ["CacheControl", "CacheTypes"]


class CacheTypes(Enum):
    """The response's cacheability, as in the original Aeros."""

    NO_CACHE = "no-cache"
    NO_STORE = "no-store"
    PUBLIC = "public"
    PRIVATE = "private"


def _seconds(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number of seconds (got {value!r})")
    if value < 0:
        raise ValueError(f"{name} must not be negative (got {value})")
    return value


class CacheControl:
    """Set ``Cache-Control`` on the responses of one view whose status is in ``cache_on_status``.

    >>> CacheControl(CacheTypes.PUBLIC, max_age=60, stale_while_revalidate=30).header
    'public, max-age=60, stale-while-revalidate=30'

    Contradictions raise ``ValueError`` when the decorator is built: ``NO_STORE`` with any
    freshness directive (``max_age``, ``immutable``, ``stale_*``), ``NO_CACHE`` with
    ``immutable`` or ``stale_while_revalidate``, ``immutable`` without ``max_age``.
    ``stale_if_error`` is in seconds (RFC 5861); the original boolean ``False`` still means
    "not set". Works on ``async def`` and plain ``def`` views.
    """

    def __init__(
        self,
        cache_type: CacheTypes | str,
        max_age: int | None = None,
        immutable: bool = False,
        no_transform: bool = False,
        stale_while_revalidate: int | None = None,
        stale_if_error: int | None = None,
        cache_on_status: Iterable[int] = (200,),
        *,
        s_maxage: int | None = None,
        cdn_max_age: int | None = None,
    ) -> None:
        try:
            self.cache_type = CacheTypes(cache_type.value if isinstance(cache_type, CacheTypes) else cache_type)
        except ValueError:
            raise ValueError(
                f"cache_type must be one of {[t.value for t in CacheTypes]} or a CacheTypes member, got {cache_type!r}"
            ) from None
        if stale_if_error is False:  # the original signature's default
            stale_if_error = None
        self.max_age = _seconds("max_age", max_age)
        self.stale_while_revalidate = _seconds("stale_while_revalidate", stale_while_revalidate)
        self.stale_if_error = _seconds("stale_if_error", stale_if_error)
        self.s_maxage = _seconds("s_maxage", s_maxage)
        self.cdn_max_age = _seconds("cdn_max_age", cdn_max_age)
        self.immutable = bool(immutable)
        self.no_transform = bool(no_transform)
        self.cache_on_status = frozenset(int(status) for status in cache_on_status)

        kind = self.cache_type
        if kind is CacheTypes.NO_STORE:
            given = [
                name
                for name, value in (
                    ("max_age", self.max_age),
                    ("immutable", self.immutable or None),
                    ("stale_while_revalidate", self.stale_while_revalidate),
                    ("stale_if_error", self.stale_if_error),
                    ("s_maxage", self.s_maxage),
                    ("cdn_max_age", self.cdn_max_age),
                )
                if value is not None
            ]
            if given:
                raise ValueError(f"no-store forbids storing, so {', '.join(given)} contradicts it")
        if kind is CacheTypes.NO_CACHE and self.immutable:
            raise ValueError("no-cache (always revalidate) contradicts immutable (never revalidate)")
        if kind is CacheTypes.NO_CACHE and self.stale_while_revalidate is not None:
            raise ValueError("no-cache (always revalidate first) contradicts stale_while_revalidate")
        if kind is CacheTypes.PRIVATE and (self.s_maxage is not None or self.cdn_max_age is not None):
            raise ValueError("private forbids shared caches, so s_maxage / cdn_max_age contradict it")
        if self.immutable and self.max_age is None:
            raise ValueError("immutable needs a max_age: it only means something while the response is fresh")
        self.header = self._render()
        #: RFC 9213 ``CDN-Cache-Control`` (only CDNs read it; it wins over Cache-Control there)
        self.cdn_header = None if self.cdn_max_age is None else f"max-age={self.cdn_max_age}"

    def _render(self) -> str:
        parts = [self.cache_type.value]
        if self.max_age is not None:
            parts.append(f"max-age={self.max_age}")
        if self.s_maxage is not None:
            parts.append(f"s-maxage={self.s_maxage}")
        if self.immutable:
            parts.append("immutable")
        if self.no_transform:
            parts.append("no-transform")
        if self.stale_while_revalidate is not None:
            parts.append(f"stale-while-revalidate={self.stale_while_revalidate}")
        if self.stale_if_error is not None:
            parts.append(f"stale-if-error={self.stale_if_error}")
        return ", ".join(parts)

    def __call__(self, view: Callable[..., Any]) -> Callable[..., Any]:
        header = self.header
        cdn_header = self.cdn_header
        statuses = self.cache_on_status
        is_async = inspect.iscoroutinefunction(view)

        @functools.wraps(view)
        async def with_cache_control(*args: Any, **kwargs: Any) -> Any:
            from quart import current_app

            if is_async:
                result = await view(*args, **kwargs)
            else:
                result = await current_app.ensure_async(view)(*args, **kwargs)
            response = await current_app.make_response(result)
            if response.status_code in statuses:
                response.headers["Cache-Control"] = header
                if cdn_header is not None:
                    response.headers["CDN-Cache-Control"] = cdn_header
            return response

        return with_cache_control

    def __repr__(self) -> str:
        return f"CacheControl({self.header!r})"
