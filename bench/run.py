#!/usr/bin/env python3
"""aeros against its peers, on one machine, in one run: ``python bench/run.py`` (see bench/README.md).

Every stack is a subprocess serving on 127.0.0.1 on a free port, pinned to CPU 0; wrk runs on
CPU 1 (``wrk -t1 -c64``). Each stack serves every scenario; the runs are interleaved (run 1 of
every stack, then run 2...) so that drift of the machine spreads over all stacks, and the
table shows the median of the runs. Only the standard library is used here; the peers live
in ``bench/.venv-peers`` (created on first use), aeros in the repository's ``.venv``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_PY = PEERS_VENV / "bin" / "python"
AEROS_PY = Path(os.environ.get("AEROS_PYTHON", ROOT / ".venv" / "bin" / "python"))
PEERS_REQUIREMENTS = BENCH / "requirements-peers.txt"

SCENARIOS = {
    "hello": ("/hello", "plain text"),
    "json": ("/json", "small JSON"),
    "big": ("/big", "60 KB JSON, compressed"),
    "cached": ("/cached", "20 ms view, cached"),
    "big-cached": ("/big-cached", "60 KB JSON view, cached, compressed"),
}
COMPRESSED = ("big", "big-cached")  # scenarios that must come back compressed
ACCEPT_ENCODING = "gzip, br"
BASELINE = "quart-hypercorn"
CEILING = "raw-hypercorn"
STARTUP_TIMEOUT = 40.0
STOP_TIMEOUT = 20.0


@dataclass
class Stack:
    """One server + framework combination, started as a command in ``bench/apps``."""

    name: str
    label: str
    python: str  # "peers" or "aeros"
    argv: list[str]  # after the interpreter; "{port}" is replaced
    env: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    workers: int = 1
    cpus: str = "0"
    scenarios: tuple[str, ...] = tuple(SCENARIOS)

    def command(self, port: int) -> list[str]:
        python = str(PEERS_PY if self.python == "peers" else AEROS_PY)
        return [python, *(part.replace("{port}", str(port)) for part in self.argv)]


def module(name: str) -> list[str]:
    return ["-m", name]


def uvicorn(app: str) -> list[str]:
    """uvicorn serving ``app`` as every uvicorn stack does: httptools, uvloop, no access log."""
    return [*module("uvicorn"), app, "--host", "127.0.0.1", "--port", "{port}", "--http", "httptools",
            "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]  # fmt: skip


HAND = "gzip 6 and a dict cache written by hand (no compression or cache of its own)"

STACKS = [
    Stack(
        "raw-granian",
        "raw ASGI, granian",
        "peers",
        [
            *module("granian"),
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--no-ws",
            "--log-level",
            "warning",
            "raw_asgi:app",
        ],
        notes="raw ASGI app: " + HAND,
    ),
    Stack(
        "raw-uvicorn",
        "raw ASGI, uvicorn",
        "peers",
        uvicorn("raw_asgi:app"),
        notes="raw ASGI app: " + HAND,
    ),
    Stack(
        "raw-hypercorn",
        "raw ASGI, Hypercorn (uvloop)",
        "peers",
        [*module("hypercorn"), "raw_asgi:app", "--bind", "127.0.0.1:{port}", "--workers", "1", "-k", "uvloop"],
        notes="raw ASGI app: " + HAND,
    ),
    Stack(
        "sanic",
        "Sanic",
        "peers",
        ["sanic_app.py"],
        env={"PORT": "{port}"},
        notes="single process, no access log; " + HAND,
    ),
    Stack(
        "starlette-uvicorn",
        "Starlette + uvicorn",
        "peers",
        uvicorn("starlette_app:app"),
        notes="GZipMiddleware defaults (gzip 9); dict cache by hand",
    ),
    Stack(
        "litestar-uvicorn",
        "Litestar + uvicorn",
        "peers",
        uvicorn("litestar_app:app"),
        notes="gzip 9 (CompressionConfig, Starlette's defaults); dict cache by hand",
    ),
    Stack(
        "fastapi-uvicorn",
        "FastAPI + uvicorn",
        "peers",
        uvicorn("fastapi_app:app"),
        notes="GZipMiddleware defaults (gzip 9); dict cache by hand",
    ),
    Stack(
        "quart-uvicorn",
        "Quart + uvicorn",
        "peers",
        uvicorn("quart_app:app"),
        notes=HAND,
    ),
    Stack(
        "flask-gunicorn",
        "Flask + gunicorn (sync)",
        "peers",
        [
            *module("gunicorn"),
            "flask_app:app",
            "--bind",
            "127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
        ],
        notes="Flask-Compress defaults (br 4), Flask-Caching SimpleCache",
    ),
    Stack(
        "quart-hypercorn",
        "Quart + Hypercorn",
        "peers",
        [*module("hypercorn"), "quart_app:app", "--bind", "127.0.0.1:{port}", "--workers", "1"],
        notes="Hypercorn's default asyncio worker; " + HAND,
    ),
    Stack(
        "quart-hypercorn-uvloop",
        "Quart + Hypercorn (uvloop)",
        "peers",
        [*module("hypercorn"), "quart_app:app", "--bind", "127.0.0.1:{port}", "--workers", "1", "-k", "uvloop"],
        notes="as aeros runs it (uvloop); " + HAND,
    ),
    Stack(
        "aeros-hypercorn",
        "aeros, Hypercorn",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "hypercorn", "ACCESS_LOG": "0"},
        notes="SimpleCache + @app.cache(timeout=60), compression=[Gzip(), Br()]; access log off",
    ),
    Stack(
        "aeros-hypercorn-bare",
        "aeros, Hypercorn, no cache/compression",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "hypercorn", "ACCESS_LOG": "0", "BARE": "1"},
        notes="WebServer(__name__) without cache= and compression=",
        scenarios=("hello", "json"),
    ),
    Stack(
        "aeros-hypercorn-log",
        "aeros, Hypercorn, access log on",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "hypercorn", "ACCESS_LOG": "1"},
        notes="access log to stdout (a file)",
        scenarios=("hello", "cached"),
    ),
    Stack(
        "aeros-uvicorn",
        "aeros, uvicorn",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "uvicorn", "ACCESS_LOG": "0"},
        notes="access log off",
    ),
    Stack(
        "aeros-uvicorn-gzip6",
        "aeros, uvicorn, gzip level 6",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "uvicorn", "ACCESS_LOG": "0", "GZIP_LEVEL": "6"},
        notes="Gzip(level=6), the peers' level (zlib-ng): /big at the size the peers send",
        scenarios=("big",),
    ),
    Stack(
        "aeros-granian",
        "aeros, granian",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "granian", "ACCESS_LOG": "0"},
        notes="the aeros-granian plugin (experimental): granian's embedded server on the runner's socket",
    ),
    Stack(
        "aeros-hypercorn-w2",
        "aeros, Hypercorn, workers=2",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "hypercorn", "ACCESS_LOG": "0", "WORKERS": "2"},
        workers=2,
        cpus="0,1",
        notes="server and wrk share both CPUs",
        scenarios=("hello", "cached"),
    ),
    Stack(
        "aeros-uvicorn-w2",
        "aeros, uvicorn, workers=2",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "uvicorn", "ACCESS_LOG": "0", "WORKERS": "2"},
        workers=2,
        cpus="0,1",
        notes="server and wrk share both CPUs",
        scenarios=("hello", "cached"),
    ),
    Stack(
        "aeros-granian-w2",
        "aeros, granian, workers=2",
        "aeros",
        ["aeros_app.py"],
        env={"PORT": "{port}", "SERVER": "granian", "ACCESS_LOG": "0", "WORKERS": "2"},
        workers=2,
        cpus="0,1",
        notes="server and wrk share both CPUs",
        scenarios=("hello", "cached"),
    ),
]
WORKERS_1_OF = {
    "aeros-hypercorn-w2": "aeros-hypercorn",
    "aeros-uvicorn-w2": "aeros-uvicorn",
    "aeros-granian-w2": "aeros-granian",
}


# --- environment ----------------------------------------------------------------------------


def ensure_peers(skip_install: bool) -> None:
    """Create ``bench/.venv-peers`` and install the peers (what installs) on first use."""
    if PEERS_PY.exists() and (skip_install or (PEERS_VENV / ".installed").exists()):
        return
    if not PEERS_PY.exists():
        print(f"creating {PEERS_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, timeout=300)
    names = [line.split("#")[0].strip() for line in PEERS_REQUIREMENTS.read_text().splitlines()]
    names = [name for name in names if name]
    print(f"installing the peers into {PEERS_VENV} ...", flush=True)
    result = subprocess.run([str(PEERS_PY), "-m", "pip", "install", "-q", *names], timeout=1800)
    if result.returncode != 0:  # install what installs, one by one
        for name in names:
            if subprocess.run([str(PEERS_PY), "-m", "pip", "install", "-q", name], timeout=600).returncode:
                print(f"  {name} did not install; its stacks will be skipped", flush=True)
    (PEERS_VENV / ".installed").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (a robust cost measure on a busy machine)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": ACCEPT_ENCODING})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- one stack ------------------------------------------------------------------------------


class Running:
    """A stack's server process: started pinned, ready when /hello answers, stopped by SIGTERM."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update({key: value.replace("{port}", str(self.port)) for key, value in stack.env.items()})
        env.pop("VIRTUAL_ENV", None)
        self.log = tempfile.TemporaryFile()
        self.stdout = tempfile.TemporaryFile()  # the access log, when on, goes to a file
        self.process = subprocess.Popen(
            ["taskset", "-c", stack.cpus, *stack.command(self.port)],
            cwd=APPS,
            env=env,
            stdout=self.stdout,
            stderr=self.log,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.stack.name} exited with {self.process.returncode}:\n{self.errors()}")
            try:
                if get(self.port, "/hello", timeout=2)[0] == 200:
                    if self.stack.workers > 1:  # let every worker come up
                        time.sleep(1.0)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.stack.name} did not answer within {STARTUP_TIMEOUT}s:\n{self.errors()}")

    def errors(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def memory(self) -> dict[str, object]:
        pids = descendants(self.process.pid)
        rss = {pid: peak_rss_mb(pid) for pid in pids}
        rss = {pid: mb for pid, mb in rss.items() if mb is not None}
        workers = [pid for pid in pids if pid != self.process.pid] or [self.process.pid]
        serving = [rss[pid] for pid in workers if pid in rss]
        return {
            "processes": len(rss),
            "peak_rss_mb_per_worker": max(serving) if serving else None,
            "peak_rss_mb_all": rss,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in the group
        except ProcessLookupError:
            pass
        self.log.close()
        self.stdout.close()


def check(running: Running, scenario: str) -> dict[str, object]:
    """A few plain requests first: is the scenario served, is /big compressed? (also warms up)."""
    path = SCENARIOS[scenario][0]
    status, headers, body = 0, {}, b""
    for _ in range(20):
        status, headers, body = get(running.port, path)
        if status != 200:
            break
    info: dict[str, object] = {
        "status": status,
        "bytes": len(body),
        "encoding": headers.get("content-encoding", "identity"),
    }
    if status == 404:
        info["na"] = "not served (plugin missing)"
    elif status != 200:
        info["na"] = f"status {status}"
    elif scenario in COMPRESSED and info["encoding"] == "identity":
        info["na"] = "not compressed"
    return info


WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_TOTAL = re.compile(r"(\d+) requests in")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_P99 = re.compile(r"99%\s+([\d.]+)(us|ms|s)")


def wrk(port: int, path: str, duration: float, connections: int, cpus: str) -> dict[str, object]:
    command = [
        "taskset",
        "-c",
        cpus,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        "-H",
        f"Accept-Encoding: {ACCEPT_ENCODING}",
        f"http://127.0.0.1:{port}{path}",
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    match = WRK_RPS.search(output)
    result: dict[str, object] = {"rps": float(match.group(1)) if match else None}
    total = WRK_TOTAL.search(output)
    result["requests"] = int(total.group(1)) if total else 0
    non2xx = WRK_NON2XX.search(output)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = WRK_ERRORS.search(output)
    result["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    p99 = WRK_P99.search(output)
    if p99:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        result["p99_ms"] = round(float(p99.group(1)) * scale, 2)
    if result["rps"] is None:
        result["raw"] = output[-1000:]
    return result


def run_stack(stack: Stack, scenarios: list[str], duration: float, connections: int) -> dict[str, object]:
    running = Running(stack)
    try:
        running.wait_ready()
        outcome: dict[str, object] = {"scenarios": {}}
        wrk_cpus = "1" if stack.cpus == "0" else stack.cpus
        for scenario in scenarios:
            info = check(running, scenario)
            if "na" not in info:
                pids = descendants(running.process.pid)
                before = cpu_seconds(pids)
                info.update(wrk(running.port, SCENARIOS[scenario][0], duration, connections, wrk_cpus))
                if info.get("requests"):
                    used = cpu_seconds(pids) - before
                    info["cpu_us_per_request"] = round(1e6 * used / int(info["requests"]), 1)
            outcome["scenarios"][scenario] = info
        outcome.update(running.memory())
        return outcome
    finally:
        running.stop()


# --- report ---------------------------------------------------------------------------------


def summarise(raw: dict[str, list[dict]], stacks: list[Stack], scenarios: list[str]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for stack in stacks:
        runs = raw.get(stack.name, [])
        row: dict[str, object] = {"label": stack.label, "notes": stack.notes, "workers": stack.workers}
        for scenario in scenarios:
            if scenario not in stack.scenarios:
                continue
            infos = [run["scenarios"].get(scenario) for run in runs if "scenarios" in run]
            infos = [info for info in infos if info]
            values = [info["rps"] for info in infos if info.get("rps")]
            cell: dict[str, object] = {"runs": values}
            if values:
                cell["median"] = statistics.median(values)
                cell["spread_pct"] = round(100 * (max(values) - min(values)) / statistics.median(values), 1)
                cell["non_2xx"] = sum(int(info.get("non_2xx", 0)) for info in infos)
                cpu = [info["cpu_us_per_request"] for info in infos if info.get("cpu_us_per_request")]
                if cpu:
                    cell["cpu_us_per_request"] = statistics.median(cpu)
                cell["encoding"] = infos[0].get("encoding")
                cell["bytes"] = infos[0].get("bytes")
            elif infos:
                cell["na"] = infos[0].get("na") or "failed"
            else:
                cell["na"] = next((run.get("error", "")[:200] for run in runs if "error" in run), "not run")
            row[scenario] = cell
        memory = [run.get("peak_rss_mb_per_worker") for run in runs if run.get("peak_rss_mb_per_worker")]
        row["peak_rss_mb_per_worker"] = round(max(memory), 1) if memory else None
        table[stack.name] = row
    for name, row in table.items():
        for scenario in scenarios:
            cell = row.get(scenario)
            if not isinstance(cell, dict) or "median" not in cell:
                continue
            for key, other in (
                ("vs_quart_hypercorn", BASELINE),
                ("vs_raw_hypercorn", CEILING),
                ("vs_workers_1", WORKERS_1_OF.get(name)),
            ):
                base = table.get(other or "", {}).get(scenario)
                if isinstance(base, dict) and base.get("median"):
                    cell[key] = round(cell["median"] / base["median"], 2)
    return table


def fmt_cell(cell: object, ratio_key: str = "vs_quart_hypercorn") -> str:
    if not isinstance(cell, dict):
        return ""
    if "median" not in cell:
        return "n/a"
    text = f"{cell['median']:,.0f}"
    if ratio_key in cell:
        text += f" ({cell[ratio_key]:.2f}x)"
    return text


def markdown(table: dict[str, dict], scenarios: list[str], meta: dict) -> str:
    sent = [s for s in scenarios if s in COMPRESSED][:1]  # what each stack sent for the 60 KB document
    header = ["stack", *(f"/{s}" for s in scenarios), *(f"/{s} sent" for s in sent), "peak RSS/worker"]
    lines = [
        f"Requests per second, median of {meta['runs']} runs of `wrk -t1 -c{meta['connections']} "
        f"-d{meta['duration']:g}s` (server on CPU 0, wrk on CPU 1; 1 worker unless said). "
        f"In brackets: ratio to Quart + Hypercorn.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in sorted(table.values(), key=lambda r: -(r.get("hello", {}) or {}).get("median", 0)):
        rss = row.get("peak_rss_mb_per_worker")
        cells = [fmt_cell(row.get(s)) for s in scenarios]
        for s in sent:
            cell = row.get(s)
            cells.append(
                f"{cell['encoding']} {cell['bytes'] / 1000:.1f} KB"
                if isinstance(cell, dict) and "median" in cell
                else ""
            )
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {f'{rss:.0f} MB' if rss else ''} |")
    ceiling = CEILING in table
    if ceiling:
        lines += [
            "",
            "Ratios to the raw ASGI app on Hypercorn (uvloop):",
            "",
            "| stack | " + " | ".join(f"/{s}" for s in scenarios) + " |",
            "|" + "---|" * (len(scenarios) + 1),
        ]
    for row in table.values() if ceiling else ():
        lines.append(
            f"| {row['label']} | "
            + " | ".join(
                f"{row[s]['vs_raw_hypercorn']:.2f}x"
                if isinstance(row.get(s), dict) and "vs_raw_hypercorn" in row[s]
                else ("" if s not in row else "n/a")
                for s in scenarios
            )
            + " |"
        )
    lines += [
        "",
        "Server CPU time per request (µs, median; user + system of the serving processes, "
        "less sensitive to other work on the machine than req/s):",
        "",
        "| stack | " + " | ".join(f"/{s}" for s in scenarios) + " |",
        "|" + "---|" * (len(scenarios) + 1),
    ]
    for row in table.values():
        lines.append(
            f"| {row['label']} | "
            + " | ".join(
                f"{row[s]['cpu_us_per_request']:.0f}"
                if isinstance(row.get(s), dict) and "cpu_us_per_request" in row[s]
                else ""
                for s in scenarios
            )
            + " |"
        )
    scaling = [
        (row, s)
        for row in table.values()
        for s in scenarios
        if isinstance(row.get(s), dict) and "vs_workers_1" in row[s]
    ]
    if scaling:
        lines += ["", "workers=2 scaling (server and wrk unpinned over both CPUs) vs workers=1 (pinned):", ""]
        lines += [
            f"- {row['label']} /{s}: {row[s]['median']:,.0f} req/s = {row[s]['vs_workers_1']:.2f}x"
            for row, s in scaling
        ]
    lines += ["", "Notes:", ""]
    lines += [f"- {row['label']}: {row['notes']}" for row in table.values() if row.get("notes")]
    for row in table.values():
        for s in scenarios:
            cell = row.get(s)
            if isinstance(cell, dict) and "median" not in cell:
                lines.append(f"- {row['label']} /{s}: n/a ({cell.get('na')})")
            elif isinstance(cell, dict) and cell.get("non_2xx"):
                lines.append(f"- {row['label']} /{s}: {cell['non_2xx']} non-2xx responses")
            if s in COMPRESSED and isinstance(cell, dict) and "median" in cell:
                lines.append(f"- {row['label']} /{s}: sent {cell.get('encoding')}, {cell.get('bytes'):,} bytes")
    lines += targets(table)
    lines += ["", f"Machine: {meta['machine']}; {meta['date']}."]
    return "\n".join(lines) + "\n"


def median_of(table: dict[str, dict], stack: str, scenario: str) -> float | None:
    cell = table.get(stack, {}).get(scenario)
    return cell.get("median") if isinstance(cell, dict) else None


def targets(table: dict[str, dict]) -> list[str]:
    """Issues 7 and 17's targets, checked against this run's medians (rows that were not run are skipped)."""
    # (what, value, reference, wanted ratio or None for a ratio shown without a target)
    checks: list[tuple[str, float | None, float | None, float | None]] = []

    def best(names: list[str], scenario: str) -> tuple[str, float | None]:
        found = [(median_of(table, name, scenario), name) for name in names]
        found = [(value, name) for value, name in found if value]
        return (max(found)[1], max(found)[0]) if found else ("", None)

    aeros = [name for name in table if name.startswith("aeros-") and not name.endswith("-w2")]
    peers = [name for name in table if not name.startswith(("aeros-", "raw-"))]
    checks.append(
        (
            "/cached: aeros-uvicorn vs Sanic (issues 7 and 17)",
            median_of(table, "aeros-uvicorn", "cached"),
            median_of(table, "sanic", "cached"),
            1.2,
        )
    )
    checks.append(
        (
            "/cached: aeros-hypercorn vs raw-hypercorn /hello",
            median_of(table, "aeros-hypercorn", "cached"),
            median_of(table, "raw-hypercorn", "hello"),
            0.9,
        )
    )
    peer, peer_big = best(peers, "big")
    mine, my_big = best(aeros, "big")
    checks.append((f"/big: best aeros ({mine}) vs best peer ({peer}) (issues 7 and 17)", my_big, peer_big, 1.2))
    checks.append(
        (
            f"/big at the peers' gzip level 6: aeros-uvicorn-gzip6 vs best peer ({peer})",
            median_of(table, "aeros-uvicorn-gzip6", "big"),
            peer_big,
            1.2,
        )
    )
    mine, my_cached = best(aeros, "big-cached")
    checks.append(
        (f"/big-cached: best aeros ({mine}) vs best peer's uncached /big ({peer})", my_cached, peer_big, 10.0)
    )
    # (aeros stack, reference stack, how the reference is named, wanted ratio or None, whose target)
    routed = [
        ("aeros-hypercorn", "quart-hypercorn", "Quart + Hypercorn", 1.0, ""),
        ("aeros-uvicorn", "quart-uvicorn", "Quart + uvicorn", 2.0, " (issue 17)"),
        ("aeros-uvicorn", "litestar-uvicorn", "Litestar + uvicorn", 1.0, " (issue 17's moonshot)"),
        ("aeros-hypercorn", "raw-hypercorn", "raw-hypercorn", 0.9, " (issue 17)"),
        # the ceiling each backend leaves: no target, for the record
        ("aeros-uvicorn", "raw-uvicorn", "raw-uvicorn", None, ""),
        ("aeros-granian", "raw-granian", "raw-granian", None, ""),
    ]
    for scenario in ("hello", "json"):
        for mine, reference, named, wanted, whose in routed:
            checks.append(
                (
                    f"/{scenario}: {mine} vs {named}{whose}",
                    median_of(table, mine, scenario),
                    median_of(table, reference, scenario),
                    wanted,
                )
            )
    for w2, w1 in WORKERS_1_OF.items():
        checks.append((f"/cached: {w2} vs {w1}", median_of(table, w2, "cached"), median_of(table, w1, "cached"), 1.6))
    lines = [
        "",
        "Targets of issues 7 and 17 (medians of this run):",
        "",
        "| target | value | reference | ratio | wanted | met |",
        "|---|---|---|---|---|---|",
    ]
    for what, value, reference, wanted in checks:
        if value and reference:
            ratio = value / reference
            verdict = "" if wanted is None else ("yes" if ratio >= wanted else "NO")
            lines.append(
                f"| {what} | {value:,.0f} | {reference:,.0f} | {ratio:.2f}x | "
                f"{'–' if wanted is None else f'≥ {wanted:g}x'} | {verdict} |"
            )
    for name in aeros + [n for n in table if n.endswith("-w2")]:
        rss = table[name].get("peak_rss_mb_per_worker")
        if rss:
            lines.append(
                f"| peak RSS per worker, {name} | {rss:.0f} MB | | | ≤ 80 MB | {'yes' if rss <= 80 else 'NO'} |"
            )
    return lines if len(lines) > 5 else []


def print_table(table: dict[str, dict], scenarios: list[str]) -> None:
    width = max(len(row["label"]) for row in table.values()) + 2
    print()
    print("stack".ljust(width) + "".join(f"/{s}".rjust(20) for s in scenarios) + "  RSS/worker")
    for row in sorted(table.values(), key=lambda r: -(r.get("hello", {}) or {}).get("median", 0)):
        rss = row.get("peak_rss_mb_per_worker")
        print(
            row["label"].ljust(width)
            + "".join(fmt_cell(row.get(s)).rjust(20) for s in scenarios)
            + (f"  {rss:.0f} MB" if rss else "")
        )
    print("(req/s, median; in brackets the ratio to Quart + Hypercorn)")
    print()
    print("server CPU µs per request".ljust(width) + "".join(f"/{s}".rjust(20) for s in scenarios))
    for row in sorted(table.values(), key=lambda r: (r.get("hello", {}) or {}).get("cpu_us_per_request", 1e9)):
        print(
            row["label"].ljust(width)
            + "".join(
                (
                    f"{row[s]['cpu_us_per_request']:.0f}"
                    if isinstance(row.get(s), dict) and "cpu_us_per_request" in row[s]
                    else ""
                ).rjust(20)
                for s in scenarios
            )
        )


def draw_chart(json_path: Path, png_path: Path) -> None:
    if not PEERS_PY.exists():
        return
    result = subprocess.run(
        [str(PEERS_PY), str(BENCH / "chart.py"), str(json_path), str(png_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode:
        print("chart not drawn:", result.stderr[-500:])
    else:
        print(f"chart: {png_path}")


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    parser.add_argument("--runs", type=int, default=3, help="runs per stack and scenario (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--quick", action="store_true", help="3-second wrk runs")
    parser.add_argument("--stacks", help="comma-separated stack names (default: all); see --list")
    parser.add_argument("--scenarios", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--list", action="store_true", help="list the stacks and exit")
    parser.add_argument("--no-install", action="store_true", help="never install the peers")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"), help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.list:
        for stack in STACKS:
            print(f"{stack.name:26} {stack.label}  [{', '.join(stack.scenarios)}]")
        return 0
    duration = 3.0 if args.quick else args.duration
    stacks = STACKS
    if args.stacks:
        wanted = args.stacks.split(",")
        unknown = set(wanted) - {s.name for s in STACKS}
        if unknown:
            parser.error(f"unknown stacks: {', '.join(sorted(unknown))} (see --list)")
        stacks = [s for s in STACKS if s.name in wanted]
    scenarios = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    if set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {set(scenarios) - set(SCENARIOS)}")
    for tool in ("wrk", "taskset"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            parser.error(f"{tool} is needed (apt-get install {'wrk' if tool == 'wrk' else 'util-linux'})")
    if any(s.python == "peers" for s in stacks):
        ensure_peers(args.no_install)
    if any(s.python == "aeros" for s in stacks) and not AEROS_PY.exists():
        parser.error(f"{AEROS_PY} missing: set up the repository first (see README.md)")

    raw: dict[str, list[dict]] = {}
    estimate = sum(len([x for x in scenarios if x in s.scenarios]) for s in stacks) * args.runs * (duration + 1)
    print(
        f"{len(stacks)} stacks x {len(scenarios)} scenarios x {args.runs} runs, {duration:g} s each: "
        f"about {estimate / 60:.0f} min",
        flush=True,
    )
    for run in range(1, args.runs + 1):
        for stack in stacks:
            mine = [s for s in scenarios if s in stack.scenarios]
            if not mine:
                continue
            try:
                outcome = run_stack(stack, mine, duration, args.connections)
            except Exception as error:  # a stack that does not install or start is reported, not fatal
                outcome = {"error": str(error)}
            outcome["loadavg_1min"] = os.getloadavg()[0]  # other work on the machine skews a run
            raw.setdefault(stack.name, []).append(outcome)
            shown = " ".join(
                (f"/{s}={info['rps']:,.0f}" if info.get("rps") else f"/{s}=n/a")
                + (f"({info.get('encoding')})" if s in COMPRESSED else "")
                for s, info in outcome.get("scenarios", {}).items()
            )
            print(f"run {run}/{args.runs} {stack.name:24} {shown or outcome.get('error', '')[:300]}", flush=True)

    table = summarise(raw, stacks, scenarios)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "duration": duration,
        "runs": args.runs,
        "connections": args.connections,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print_table(table, scenarios)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"meta": meta, "table": table, "raw": raw}, indent=1, default=str))
    md = markdown(table, scenarios, meta)
    output.with_suffix(".md").write_text(md)
    print(f"\nresults: {output} and {output.with_suffix('.md')}")
    draw_chart(output, output.parent / "chart.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
