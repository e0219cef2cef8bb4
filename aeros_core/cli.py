"""The ``aeros`` command: ``aeros run module:app`` and ``aeros plugins``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Sequence

from .plugins import PluginLoadError, discover, load_entry_point


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
    app.run(
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log_file=args.access_log,
        access_log_to_std=not args.no_access_log,
        reload=args.reload,
        server=args.server,
        certfile=args.certfile,
        keyfile=args.keyfile,
    )
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="aeros", description="Run aeros apps and list aeros plugins.")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="serve an app: aeros run module:app")
    run.add_argument("target", help="module:attribute of the WebServer (attribute defaults to 'app')")
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--log-level", default="INFO")
    run.add_argument("--access-log", default=None, metavar="FILE", help="also write the access log to FILE")
    run.add_argument("--no-access-log", action="store_true", help="do not write the access log to stdout")
    run.add_argument("--reload", action="store_true", help="restart on source changes (development)")
    run.add_argument("--server", default="hypercorn", help="server backend (default: hypercorn)")
    run.add_argument("--certfile", default=None)
    run.add_argument("--keyfile", default=None)
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
