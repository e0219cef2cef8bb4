"""The original Aeros ``include_server_header=`` keyword, applied through the server config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..hookspecs import hookimpl
from ..options import Option
from ..runner.settings import ServerSettings


class ServerHeaderPlugin:
    def __init__(self) -> None:
        self.include = True

    @hookimpl
    def aeros_options(self) -> list[Option]:
        return [Option("include_server_header", True, "send a Server header naming the server")]

    @hookimpl
    def aeros_app_init(self, app: Any, options: Mapping[str, Any]) -> None:
        self.include = bool(options["include_server_header"])

    @hookimpl
    def aeros_server_config(self, settings: ServerSettings) -> None:
        settings.include_server_header = self.include
