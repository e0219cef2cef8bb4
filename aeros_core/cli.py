"""The ``aeros`` command: ``aeros run module:app`` and ``aeros plugins``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import MISSING
from typing import Any

from .plugins import PluginLoadError, discover, load_entry_point
from .runner.settings import ServerSettings, parse_bool


def load_app(target: str) -> Any:
    """Import ``module:attribute`` (attribute defaults to ``app``) from the current directory."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute or "app")
    except AttributeError:
        raise SystemExit(f"aeros: module {module_name!r} has no attribute {attribute or 'app'!r}") from None


def command_run(args: argparse.Namespace) -> int:
    app = load_app(args.target)
    given = {name: getattr(args, name) for name in ServerSettings.keywords() if hasattr(args, name)}
    app.run(**given)
    return 0


def command_plugins(args: argparse.Namespace) -> int:
    rows = []
    for entry_point in discover():
        try:
            info = load_entry_point(entry_point).as_dict()
            info["status"] = "ok"
        except PluginLoadError as error:
            dist = getattr(entry_point, "dist", None)
            info = {
                "name": entry_point.name,
                "distribution": dist.metadata["Name"] if dist else None,
                "version": dist.version if dist else None,
                "builtin": False,
                "status": f"broken: {error}",
            }
        rows.append(info)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        marker = " (built-in)" if row["builtin"] else ""
        status = "" if row["status"] == "ok" else f"  [{row['status']}]"
        print(f"{row['name']:<16} {row['distribution'] or '-'} {row['version'] or '-'}{marker}{status}")
    return 0


#: the original flags, kept: --access-log FILE, --no-access-log
ALIASES = {"access_log_file": ["--access-log"], "access_log_to_std": []}


def add_settings_flags(run: argparse.ArgumentParser) -> None:
    """One ``--kebab-case`` flag per run() keyword of :class:`ServerSettings`, help naming its variable."""
    for name, spec in ServerSettings.keywords().items():
        flag = "--" + name.replace("_", "-")
        default = spec.default if spec.default is not MISSING else spec.default_factory()
        help = f"{spec.metadata['help'].replace('%', '%%')} (default: {default!r}; env {ServerSettings.env_name(name)})"
        flags = [flag, *ALIASES.get(name, [])]
        if spec.metadata["parse"] is parse_bool:
            run.add_argument(
                *flags, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help
            )
        else:
            metavar = name.upper()
            run.add_argument(
                *flags, dest=name, type=spec.metadata["parse"], default=argparse.SUPPRESS, metavar=metavar, help=help
            )
    run.add_argument(
        "--no-access-log",
        dest="access_log_to_std",
        action="store_false",
        default=argparse.SUPPRESS,
        help="do not write the access log to standard output",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="aeros", description="Run aeros apps and list aeros plugins.")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="serve an app: aeros run module:app",
        description="Serve an app. Every flag also reads from its AEROS_<NAME> environment variable;"
        " precedence: flag > keyword in code > environment variable > default.",
    )
    run.add_argument("target", help="module:attribute of the WebServer (attribute defaults to 'app')")
    add_settings_flags(run)
    run.set_defaults(handler=command_run)

    plugins = commands.add_parser("plugins", help="list the discovered plugins")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(handler=command_plugins)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
