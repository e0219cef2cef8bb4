"""The order in which plugins touch a request, fixed once per app.

A stage says how near the view a step sits: lower is nearer. Response steps run in
ascending stage; ASGI wrappers are composed lowest-innermost; before-request steps run from
the highest stage down, and a step that answers hands its answer to the response steps
above its own stage (a cache hit skips STORE but still gets headers and encoding).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    import pluggy
    from quart.typing import ResponseReturnValue, ResponseTypes

#: An ASGI application ``(scope, receive, send) -> None``. Loosely typed on purpose, so that Quart's,
#: Starlette's and Hypercorn's differently typed ASGI callables all fit.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class Stage(IntEnum):
    """Where a step sits between the view (low) and the network (high)."""

    LIMIT = 50  #: admission control: the soft_limit 503
    STORE = 100  #: server-side cache: sees and keeps the body the view made
    HEADERS = 200  #: global headers, CORS, security headers
    ENCODE = 300  #: content-coding (compression): always last to touch the body
    OBSERVE = 900  #: access log, metrics: sees every response as sent
    REQUEST_ID = 950  #: request id: set before the access log and the view read it, on every response
    HEALTH = 975  #: health_path / ready_path: answered above the log (unless log_health) and the request id
    PROXY = 1000  #: trusted proxies: outermost, rewrites the scope before any other step reads it


@dataclass(frozen=True)
class BeforeRequest:
    """A step that may answer a routed request before its view runs."""

    stage: int
    handler: Callable[[], Awaitable[ResponseReturnValue | None]]


@dataclass(frozen=True)
class AfterResponse:
    """A step that transforms every routed response."""

    stage: int
    transform: Callable[[ResponseTypes], Awaitable[ResponseTypes]]


@dataclass(frozen=True)
class AsgiWrapper:
    """A factory wrapping the ASGI app at the edge: ``wrap(asgi_app) -> asgi_app``."""

    stage: int
    wrap: Callable[[ASGIApp], ASGIApp]


Step = TypeVar("Step", BeforeRequest, AfterResponse, AsgiWrapper)


def collect(results: Iterable[Any], kind: type[Step]) -> list[Step]:
    """Flatten hook results (each None, one step, or an iterable of steps), sorted by stage."""
    steps: list[Step] = []
    for result in results:
        if result is None:
            continue
        items = [result] if isinstance(result, kind) else list(result)
        for item in items:
            if not isinstance(item, kind):
                raise TypeError(f"expected {kind.__name__}, got {item!r}")
            steps.append(item)
    steps.sort(key=lambda step: step.stage)
    return steps


def compose_asgi(app: ASGIApp, wrappers: Iterable[AsgiWrapper]) -> ASGIApp:
    """Wrap ``app`` lowest stage first, so the highest stage ends outermost."""
    for wrapper in sorted(wrappers, key=lambda w: w.stage):
        app = wrapper.wrap(app)
    return app


@dataclass(frozen=True)
class RequestPipeline:
    """The request-path chains of one app, built once."""

    before: tuple[BeforeRequest, ...]  # highest stage first
    after: tuple[AfterResponse, ...]  # lowest stage first

    @classmethod
    def build(cls, hook: pluggy.HookRelay, app: Any) -> RequestPipeline:
        before = collect(hook.aeros_before_request(app=app), BeforeRequest)
        after = collect(hook.aeros_after_response(app=app), AfterResponse)
        return cls(before=tuple(reversed(before)), after=tuple(after))
