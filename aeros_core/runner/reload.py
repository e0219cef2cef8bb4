"""``reload=True`` (development only): rerun the program whenever one of its source files changes.

The parent watches the files of every module it has imported and runs the same command line
in a child process (``AEROS_RELOAD_CHILD=1``), which serves normally. On a change the child
gets SIGTERM and a new one starts.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .settings import ServerSettings

log = logging.getLogger("aeros")
CHILD_ENV = "AEROS_RELOAD_CHILD"
POLL_SECONDS = 0.5


def is_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def source_files() -> dict[Path, float]:
    files: dict[Path, float] = {}
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not filename or not filename.endswith(".py"):
            continue
        path = Path(filename)
        try:
            files[path] = path.stat().st_mtime
        except OSError:
            pass
    return files


def changed(files: dict[Path, float]) -> Path | None:
    for path, mtime in files.items():
        try:
            if path.stat().st_mtime != mtime:
                return path
        except OSError:
            return path
    return None


def supervise(settings: ServerSettings) -> int:
    command = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    environment = {**os.environ, CHILD_ENV: "1"}
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            files = source_files()
            child = subprocess.Popen(command, env=environment)
            log.info("reloader: serving from pid %d, watching %d files", child.pid, len(files))
            path = None
            while not stopping and child.poll() is None and path is None:
                time.sleep(POLL_SECONDS)
                path = changed(files)
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(settings.graceful_timeout + 5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if stopping:
                return 0
            if path is None:  # the child exited by itself: wait for a fix, then rerun
                log.warning("reloader: the server exited with code %s; waiting for a change", child.returncode)
                while not stopping and changed(files) is None:
                    time.sleep(POLL_SECONDS)
                if stopping:
                    return 0
            else:
                log.info("reloader: %s changed; restarting", path)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
