"""Listening sockets: created (or inherited) by the runner before any worker starts.

Rules, each implemented once here:

* **Addresses** (``bind=[...]``): ``HOST:PORT``, ``[::1]:PORT``, ``unix:/path``, ``fd://N``; without
  ``bind``, ``host``/``port``. systemd socket activation (``LISTEN_FDS``/``LISTEN_PID``) and a
  SIGHUP restart (``AEROS_INHERIT_FDS``) hand over sockets that are already listening.
* **Exclusive port.** Binding an address that something already listens on is an error
  ("address in use"), whatever ``workers`` is. On Linux each worker gets its own socket on a
  TCP address (SO_REUSEPORT: the kernel balances connections between them); to keep a second
  server out of that group, the first socket is bound *without* SO_REUSEPORT (which fails with
  EADDRINUSE if any socket holds the port, SO_REUSEPORT or not) and only then marked
  SO_REUSEPORT, before the others join. Between two aeros servers there is no race: whoever
  binds first holds the port, the other's plain bind fails. A program that binds with
  SO_REUSEPORT *after* our first bind (without probing as we do) can still join the group; the
  kernel only checks that it runs as the same user. Elsewhere (no balancing SO_REUSEPORT), one
  socket per address is shared by all workers.
* **Closing without resets** (:func:`stop_accepting`): a listening socket closed with
  connections in its accept queue resets them. On Linux the runner first attaches a socket
  filter that drops new SYNs (clients retry and are then refused), lets the server accept
  what is queued, and only then lets it close the socket.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import socket
import struct
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from .settings import ServerSettings

LINUX = sys.platform.startswith("linux")
#: SO_REUSEPORT spreads connections over the sockets of a group only on Linux (elsewhere the
#: last bound socket, or an arbitrary one, takes them all).
BALANCED_REUSEPORT = LINUX and hasattr(socket, "SO_REUSEPORT")
INHERIT_ENV = "AEROS_INHERIT_FDS"  #: a SIGHUP restart's sockets: "3,4;5" (per address; per worker)
SD_LISTEN_FDS_START = 3


# --- addresses --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """One place to listen: ``kind`` is ``"tcp"`` (host, port), ``"unix"`` (path) or ``"fd"``."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    @classmethod
    def parse(cls, text: str) -> Address:
        """``HOST:PORT``, ``[::1]:PORT``, ``unix:/path`` or ``fd://N``."""
        text = text.strip()
        if text.startswith("unix:"):
            if not text[5:]:
                raise ValueError(f"bind {text!r}: unix: needs a path")
            return cls("unix", path=text[5:])
        if text.startswith("fd://"):
            if not text[5:].isdigit():
                raise ValueError(f"bind {text!r}: fd:// needs a file descriptor number")
            return cls("fd", fd=int(text[5:]))
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = text.rpartition(":")
        if not port.isdigit() or not host or ":" in host and not text.startswith("["):
            raise ValueError(f"bind {text!r}: expected HOST:PORT, [IPv6]:PORT, unix:/path or fd://N")
        return cls("tcp", host=host, port=int(port))

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def addresses(settings: ServerSettings) -> list[Address]:
    """Where ``settings`` says to listen: ``bind``, or ``host``/``port``."""
    if settings.bind:
        return [Address.parse(text) for text in settings.bind]
    return [Address("tcp", host=settings.host, port=settings.port)]


# --- binding ------------------------------------------------------------------------------------


def _listening(sock: socket.socket, backlog: int) -> socket.socket:
    sock.listen(backlog)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def bind_tcp(address: Address, backlog: int, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``address`` (listening unless ``listen=False``: see :meth:`Listeners.renew`);
    ``reuse_port``: join an existing SO_REUSEPORT group."""
    infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        if not listen:
            sock.setblocking(False)
            sock.set_inheritable(True)
            return sock
        return _listening(sock, backlog)
    except OSError as error:
        sock.close()
        raise _address_error(address, error) from error


def listen_if_bound(sock: socket.socket, backlog: int) -> None:
    """Start listening on a socket bound with ``listen=False`` (no-op when it listens already)."""
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.listen(backlog)


def bind_unix(address: Address, backlog: int) -> socket.socket:
    """A listening Unix socket; a stale socket file nobody listens on is replaced."""
    if os.path.exists(address.path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(address.path)
        except ConnectionRefusedError:
            os.unlink(address.path)  # left by a server that is gone
        except OSError:
            pass
        else:
            raise _address_error(address, OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)))
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address.path)
        return _listening(sock, backlog)
    except OSError as error:
        sock.close()
        raise _address_error(address, error) from error


def adopt_fd(fd: int) -> socket.socket:
    """A socket object for an inherited listening file descriptor."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as error:
        raise OSError(error.errno, f"fd://{fd} is not a socket: {error.strerror}") from error
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"fd://{fd} is not a stream socket")
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def _address_error(address: Address, error: OSError) -> OSError:
    reason = "address in use" if error.errno == errno.EADDRINUSE else error.strerror
    return OSError(error.errno, f"cannot listen on {address}: {reason}")


def bind(settings: ServerSettings, reuse_port: bool = False) -> socket.socket:
    """A listening socket on the first address of ``settings`` (a thread server's)."""
    address = addresses(settings)[0]
    if address.kind == "unix":
        return bind_unix(address, settings.backlog)
    if address.kind == "fd":
        return adopt_fd(address.fd)
    return bind_tcp(address, settings.backlog, reuse_port)


def reuse_port_group(address: Address, backlog: int, count: int) -> list[socket.socket]:
    """``count`` SO_REUSEPORT sockets on ``address``, the port held exclusively (module docstring)."""
    first = bind_tcp(address, backlog, reuse_port=False)
    try:
        first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        port = first.getsockname()[1]
        same = Address("tcp", host=address.host, port=port)
        group = [first]
        for _ in range(count - 1):
            group.append(bind_tcp(same, backlog, reuse_port=True))
        return group
    except OSError:
        for sock in locals().get("group", [first]):
            sock.close()
        raise


# --- the sockets of one server --------------------------------------------------------------


@dataclass
class Listeners:
    """The listening sockets of a server: per address, one socket shared by every worker or
    one per worker (SO_REUSEPORT, a "per-worker group")."""

    groups: list[list[socket.socket]] = field(default_factory=list)
    backlog: int = 1024

    def for_worker(self, number: int) -> list[socket.socket]:
        """The sockets worker ``number`` serves: one per address."""
        return [group[number % len(group)] for group in self.groups]

    def private(self, number: int) -> list[socket.socket]:
        """Those of worker ``number``'s sockets that no other worker serves (per-worker groups)."""
        return [group[number % len(group)] for group in self.groups if len(group) > 1]

    def renew(self, number: int) -> list[socket.socket]:
        """A new socket for worker ``number`` in each per-worker group; returns the sockets it replaces.

        For a worker replaced gracefully (recycled, or a SIGHUP restart): the old worker keeps its
        socket, refuses new handshakes on it and drains its queue before closing it, while its
        replacement joins the group with a new one. The new socket is bound but not listening:
        the kernel sends it connections only once its worker serves
        (:func:`listen_if_bound`, called when the app's startup completes).
        """
        replaced = []
        for group in self.groups:
            if len(group) > 1:
                index = number % len(group)
                old = group[index]
                host, port = old.getsockname()[:2]
                group[index] = bind_tcp(Address("tcp", host=host, port=port), self.backlog, True, listen=False)
                replaced.append(old)
        return replaced

    def all(self) -> list[socket.socket]:
        return [sock for group in self.groups for sock in group]

    def close(self) -> None:
        for sock in self.all():
            sock.close()

    def encode(self) -> str:
        """For :data:`INHERIT_ENV`: the file descriptors, ``,`` within an address, ``;`` between."""
        return ";".join(",".join(str(sock.fileno()) for sock in group) for group in self.groups)

    @classmethod
    def inherit(cls, text: str, workers: int, backlog: int) -> Listeners:
        """A SIGHUP successor's sockets: shared ones as they are; per-worker groups renewed (this
        process's workers get new sockets; the old workers drain theirs)."""
        groups = [[adopt_fd(int(fd)) for fd in group.split(",")] for group in text.split(";") if group]
        for index, group in enumerate(groups):
            if len(group) > 1:
                host, port = group[0].getsockname()[:2]
                same = Address("tcp", host=host, port=port)
                groups[index] = [bind_tcp(same, backlog, reuse_port=True, listen=False) for _ in range(workers)]
                for sock in group:
                    sock.close()
        return cls(groups, backlog)


def systemd_fds(environ: Mapping[str, str]) -> list[int]:
    """The sockets systemd passed (``LISTEN_FDS``, when ``LISTEN_PID`` is this process)."""
    if environ.get("LISTEN_PID") != str(os.getpid()) or not environ.get("LISTEN_FDS", "").isdigit():
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(environ["LISTEN_FDS"])))


def listen(settings: ServerSettings, environ: Mapping[str, str] | None = None) -> Listeners:
    """The sockets of ``app.run()``: inherited (SIGHUP restart, systemd) or bound here."""
    environ = os.environ if environ is None else environ
    if environ.get(INHERIT_ENV):
        return Listeners.inherit(environ[INHERIT_ENV], settings.workers, settings.backlog)
    inherited = systemd_fds(environ)
    if inherited:
        return Listeners([[adopt_fd(fd)] for fd in inherited], settings.backlog)
    listeners = Listeners(backlog=settings.backlog)
    try:
        for address in addresses(settings):
            if address.kind == "tcp" and settings.workers > 1 and BALANCED_REUSEPORT:
                listeners.groups.append(reuse_port_group(address, settings.backlog, settings.workers))
            elif address.kind == "tcp":
                listeners.groups.append([bind_tcp(address, settings.backlog)])
            elif address.kind == "unix":
                listeners.groups.append([bind_unix(address, settings.backlog)])
            else:
                listeners.groups.append([adopt_fd(address.fd)])
    except BaseException:
        listeners.close()
        raise
    return listeners


def url_of(settings: ServerSettings, sock: socket.socket) -> str:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return f"{settings.scheme}+unix://{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{settings.scheme}://{host}:{port}"


# --- closing without resetting queued connections ------------------------------------------------

SO_ATTACH_FILTER = 26  # Linux <asm-generic/socket.h>
#: Classic BPF run on each segment reaching a listening TCP socket (data starts at the TCP
#: header): drop it when the SYN flag (byte 13, bit 0x02) is set, keep it otherwise, so that
#: handshakes already under way complete while new ones never start.
_DROP_SYN = [(0x30, 0, 0, 13), (0x45, 1, 0, 0x02), (0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)]
QUEUE_POLL_SECONDS = 0.01
QUEUE_WAIT_SECONDS = 2.0


def refuse_new_connections(sock: socket.socket) -> bool:
    """Stop the kernel from completing new handshakes on ``sock`` (Linux TCP); False elsewhere.

    The filter belongs to the socket, not the descriptor: every process holding it is covered.
    """
    if not LINUX or sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.fileno() < 0:
        return False
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in _DROP_SYN))
    program = struct.pack("HL", len(_DROP_SYN), ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
    except OSError:
        return False
    return True


def accept_queue_length(sock: socket.socket) -> int | None:
    """Connections waiting in ``sock``'s accept queue (Linux: tcp_info.tcpi_unacked of a listener)."""
    if not LINUX or sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.fileno() < 0:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    return cast("int | None", struct.unpack_from("I", info, 24)[0])


def queued(sockets: Iterable[socket.socket]) -> int:
    return sum(accept_queue_length(sock) or 0 for sock in sockets)


async def stop_accepting(sockets: list[socket.socket], timeout: float = QUEUE_WAIT_SECONDS) -> None:
    """Before a server closes ``sockets`` for good: refuse new handshakes, then wait (bounded)
    until the server has accepted every queued connection, so that closing resets none."""
    filtered = [sock for sock in sockets if refuse_new_connections(sock)]
    if not filtered:
        return
    deadline = time.monotonic() + timeout
    await asyncio.sleep(QUEUE_POLL_SECONDS)  # a handshake under way when the filter came completes
    while queued(filtered) and time.monotonic() < deadline:
        await asyncio.sleep(QUEUE_POLL_SECONDS)
    # The connections accepted last read their first request in the next turns of the loop;
    # until then a backend closing idle connections would take them for idle.
    await asyncio.sleep(QUEUE_POLL_SECONDS)
