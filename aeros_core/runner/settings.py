"""Everything a server needs to know, whatever backend serves the app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..app import WebServer


@dataclass
class ServerSettings:
    """The keywords of ``app.run(...)``, after plugins adjusted them (``aeros_server_config``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: int | str = "INFO"
    access_log_to_std: bool = True
    access_log_file: str | None = None
    traceback: bool = True
    soft_limit: int | None = None
    hard_limit: int | None = None
    certfile: str | None = None
    keyfile: str | None = None
    reload: bool = False
    graceful_timeout: float = 10.0
    server: str = "hypercorn"
    include_server_header: bool = True
    max_header_size: int = 16 * 1024
    keep_alive_timeout: float = 5.0
    backend_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.soft_limit is not None and self.soft_limit < 1:
            raise ValueError(f"soft_limit must be at least 1, got {self.soft_limit}")
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError("TLS needs both certfile and keyfile")
        if isinstance(self.log_level, str):
            level = logging.getLevelName(self.log_level.upper())
            if not isinstance(level, int):
                raise ValueError(f"unknown log_level {self.log_level!r}")

    @classmethod
    def external(cls, app: "WebServer") -> "ServerSettings":
        """Settings for an app served by an ASGI server aeros did not start (it logs itself)."""
        return cls(host=app.host, port=app.port, server="external", access_log_to_std=False)

    @property
    def tls(self) -> bool:
        return bool(self.certfile)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def backlog(self) -> int:
        return self.hard_limit if self.hard_limit is not None else 1024
