"""The file-descriptor limit: raised to its hard limit at start; ``max_connections`` derived from it.

Every connection is a file descriptor. A server whose descriptors run out cannot accept (and
asyncio then stops accepting for a second at a time), so a flood of connections that send
nothing would lock every client out. The runner raises the soft ``RLIMIT_NOFILE`` to the hard
limit once at start, and, when ``max_connections`` is not given, sets it below the limit with
headroom for the files, pipes and upstream connections (database, cache) the app opens:
an eighth of the limit, at least :data:`MIN_HEADROOM` descriptors.
"""

from __future__ import annotations

import logging

from .settings import ServerSettings

log = logging.getLogger("aeros")

MIN_HEADROOM = 64
#: what "unlimited" is taken to mean (Linux refuses a soft limit above fs.nr_open anyway)
UNLIMITED = 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (where the platform has one); the new soft limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: no such limit to raise
        return UNLIMITED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        for target in (wanted, 1 << 16):  # macOS refuses more than OPEN_MAX for an "unlimited" hard limit
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                break
            except (ValueError, OSError):
                continue
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return UNLIMITED if soft == resource.RLIM_INFINITY else int(soft)


def connections_for(open_files: int) -> int:
    """``max_connections`` for a process that may have ``open_files`` descriptors open."""
    headroom = max(MIN_HEADROOM, open_files // 8)
    return max(1, open_files - headroom)


def apply(settings: ServerSettings) -> None:
    """At start: raise the limit; derive ``settings.max_connections`` when it was not given."""
    open_files = raise_open_files_limit()
    derived = connections_for(open_files)
    if settings.max_connections is None:
        settings.max_connections = derived
    elif settings.max_connections > derived:
        log.warning(
            "max_connections=%d is above what %d open files allow (%d); connections beyond that will fail",
            settings.max_connections,
            open_files,
            derived,
        )


def max_connections(settings: ServerSettings) -> int:
    """``settings.max_connections``, or, when the runner did not set it, derived from the current limit."""
    if settings.max_connections is not None:
        return settings.max_connections
    try:
        import resource
    except ImportError:  # pragma: no cover
        return connections_for(UNLIMITED)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return connections_for(UNLIMITED if soft == resource.RLIM_INFINITY else int(soft))
