"""Listening sockets, created by the runner before any worker starts."""

from __future__ import annotations

import socket

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


def url_of(settings: ServerSettings, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{port}"
