"""A FileSystemCache app whose directory is made read-only for real (a read-only bind mount).

Run inside a mount namespace of its own (``unshare --map-root-user --mount``), so the mount is
seen by this process only. Prints the URL; then, per line on stdin: ``ro`` bind-mounts the
cache directory read-only over itself, ``rw`` removes that mount; each answered by ``ok``.
Writes fail with EROFS even for root, while reads keep working: the state of issue 12, item 5.
"""

from __future__ import annotations

import logging
import subprocess
import sys

from aeros import FileSystemCache, WebServer

directory = sys.argv[1]
backend = FileSystemCache(directory)
backend.retry_after = 0.05  # many retry windows per second: flapping would show at once
app = WebServer(__name__, cache=backend, disable_plugins=["hello"])


@app.route("/page/<name>")
@app.cache(timeout=600)
async def page(name: str) -> dict:
    return {"name": name}


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="LOG %(name)s %(message)s")
    server = app.run_in_thread(port=0, access_log_to_std=False, log_level="WARNING")
    print(server.url, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "ro":
            subprocess.run(["mount", "--bind", "-o", "ro", directory, directory], check=True)
        elif command == "rw":
            subprocess.run(["umount", directory], check=True)
        print("ok", flush=True)
    server.stop(timeout=10)
