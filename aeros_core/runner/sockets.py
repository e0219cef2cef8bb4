"""Listening sockets, created by the runner before any worker starts."""

from __future__ import annotations

import socket
from dataclasses import replace

from .settings import ServerSettings


def bind(settings: ServerSettings, reuse_port: bool = False) -> socket.socket:
    """A listening, non-blocking, inheritable TCP socket on ``settings.host:settings.port``."""
    infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"cannot resolve {settings.host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(settings.backlog)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {settings.host}:{settings.port}: {error.strerror}") from error
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def bind_per_worker(settings: ServerSettings) -> list[socket.socket]:
    """One socket per worker on the same port (SO_REUSEPORT), so the kernel spreads connections
    evenly; where the platform lacks SO_REUSEPORT, one socket shared by every worker.

    A single shared socket lets whichever worker wakes first take most connections
    (measured with plain Hypercorn --workers 2: one worker took most of the load).
    """
    if settings.workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [bind(settings)]
    first = bind(settings, reuse_port=True)
    port = first.getsockname()[1]
    same_port = replace(settings, port=port)
    return [first, *(bind(same_port, reuse_port=True) for _ in range(settings.workers - 1))]


def url_of(settings: ServerSettings, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{port}"
