"""A worker dies with its supervisor, even when the supervisor is killed with SIGKILL.

Linux: right after the fork, the worker asks the kernel for SIGTERM when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), then checks that the parent did not die before the request
was made. Elsewhere (or with ``AEROS_PARENT_WATCH=pipe``): the worker watches one end of a
socket pair whose other end only the supervisor holds; end of file means the supervisor is
gone. Either way the worker gets SIGTERM: it finishes its requests in flight
(``graceful_timeout``) and exits.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading

PR_SET_PDEATHSIG = 1
WATCH_ENV = "AEROS_PARENT_WATCH"


def use_prctl() -> bool:
    return sys.platform.startswith("linux") and os.environ.get(WATCH_ENV) != "pipe"


class ParentLink:
    """Made by the supervisor before its first worker; handed to each worker."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.held: socket.socket | None = None  #: the supervisor's end: closed only by its death
        self.watched: socket.socket | None = None  #: the workers' end
        if not use_prctl():
            self.held, self.watched = socket.socketpair()

    def worker_args(self) -> tuple[int, socket.socket | None, int]:
        """What a worker needs (picklable for spawn): parent pid, its end, the end to close."""
        return self.pid, self.watched, self.held.fileno() if self.held is not None else -1


def die_with_parent(parent_pid: int, watched: socket.socket | None, inherited_fd: int, forked: bool) -> None:
    """In a worker, first thing: arrange to get SIGTERM when ``parent_pid`` dies."""
    if watched is None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        if forked and inherited_fd >= 0:
            os.close(inherited_fd)  # a forked worker inherited the supervisor's end: not ours to hold
        threading.Thread(target=_watch, args=(watched,), name="aeros-parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the supervisor died before we asked
        os._exit(1)


def _watch(watched: socket.socket) -> None:
    try:
        while watched.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
