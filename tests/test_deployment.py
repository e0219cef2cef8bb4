"""docs/deployment.md, exercised: real HAProxy and nginx started from the documented configurations
(read out of the page, so docs and tests cannot drift) in front of a real aeros process; the
systemd units, Dockerfile and Kubernetes manifest checked against the documented run() keywords."""

from __future__ import annotations

import ast
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aeros_core.testing import installed_backends

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "deployment.md"
CODE_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CLIENT = "127.0.0.2"  # the "real client": loopback, but not the proxies' address (127.0.0.1)


def blocks(language: str) -> list[str]:
    return [body for lang, body in CODE_BLOCK.findall(PAGE.read_text()) if lang == language]


def block(language: str, needle: str) -> str:
    (found,) = [body for body in blocks(language) if needle in body]
    return found


def documented_run_keywords() -> dict[str, Any]:
    """The constant keywords of the production entry point's ``app.run(...)``."""
    tree = ast.parse(block("python", "ready_path="))
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
    ]
    return {kw.arg: kw.value.value for kw in call.keywords if isinstance(kw.value, ast.Constant)}


def substitute(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the documented configuration no longer contains {old!r} once"
    return text.replace(old, new)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (httpx.HTTPError, OSError):
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def client() -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT), timeout=10)


class Tool:
    """A real proxy process (haproxy, nginx) in the foreground, stopped at teardown."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.process.poll() is None, f"{command[0]} exited:\n{log.read_text()}"
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_for(listening, f"{command[0]} to listen")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def tools() -> Iterator[list[Tool]]:
    started: list[Tool] = []
    yield started
    for tool in started:
        tool.stop()


AEROS_APP = """
import os
from aeros import WebServer, request_id
from quart import request, url_for

app = WebServer(__name__)
state = {"ready": True}

@app.ready_check
async def switch() -> bool:
    return state["ready"]

@app.route("/pid")
async def pid():
    return str(os.getpid())

@app.route("/who")
async def who():
    return {"addr": request.remote_addr, "url": url_for("who", _external=True), "rid": request_id(),
            "forwarded_host": request.headers.get("X-Forwarded-Host")}

@app.post("/ready/<flag>")
async def ready(flag):
    state["ready"] = flag == "on"
    return flag

if __name__ == "__main__":
    app.run(port=0, server=os.environ["SERVER"], trusted_proxies="127.0.0.1", health_path=os.environ["HEALTH"],
            ready_path=os.environ["READY"], drain_delay=float(os.environ["DRAIN"]), access_log_format="json",
            access_log_to_std=False, access_log_file=os.environ["ACCESS_LOG"], log_health=True,
            proxy_protocol=os.environ.get("PROXY_PROTOCOL") == "1")
"""


@pytest.fixture
def aeros_server(script_server, tmp_path: Path) -> Callable[..., tuple[Any, int, Path]]:
    documented = documented_run_keywords()

    def start(server: str = "hypercorn", proxy_protocol: bool = False) -> tuple[Any, int, Path]:
        log = tmp_path / f"access-{server}.log"
        env = {
            "SERVER": server,
            "HEALTH": documented["health_path"],
            "READY": documented["ready_path"],
            "DRAIN": str(documented["drain_delay"]),
            "ACCESS_LOG": str(log),
            "PROXY_PROTOCOL": "1" if proxy_protocol else "0",
        }
        process = script_server(AEROS_APP, env=env)
        if proxy_protocol:  # direct requests without a PROXY header are closed: wait for the announcement only
            wait_for(lambda: process.url, "aeros to announce its address")
        else:
            process.wait_ready()
        return process, int(process.url.rsplit(":", 1)[1]), log

    return start


def log_records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


def logged(log: Path, predicate: Callable[[dict], bool]) -> dict[str, Any]:
    return wait_for(lambda: next((r for r in log_records(log) if predicate(r)), None), "the access-log line")


# --- HAProxy ---------------------------------------------------------------------------------

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (./dev setup)")
needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed (./dev setup)")


def haproxy_config(aeros_port: int, port: int, proxy_protocol: bool = False) -> str:
    config = block("haproxy", "frontend www")
    if proxy_protocol:
        backend = config[config.index("\nbackend shop") + 1 :]
        config = config.replace(backend, block("haproxy", "send-proxy-v2"))
    config = substitute(config, "bind :80", f"bind 127.0.0.1:{port}")
    return substitute(config, "server app1 127.0.0.1:8000", f"server app1 127.0.0.1:{aeros_port}")


def start_haproxy(tools: list[Tool], tmp_path: Path, config: str) -> Tool:
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    port = int(re.search(r"bind 127\.0\.0\.1:(\d+)", config).group(1))
    tool = Tool(["haproxy", "-db", "-f", str(path)], port, tmp_path / "haproxy.out")
    tools.append(tool)
    return tool


@needs_haproxy
def test_haproxy_real_client_request_id_and_readiness(aeros_server, tools, tmp_path):
    _process, aeros_port, log = aeros_server()
    haproxy = start_haproxy(tools, tmp_path, haproxy_config(aeros_port, free_port()))
    with client() as http:
        wait_for(lambda: http.get(haproxy.url + "/who").status_code == 200, "HAProxy to route to aeros")
        response = http.get(haproxy.url + "/who", headers={"X-Forwarded-Host": "evil", "X-Forwarded-For": "6.6.6.6"})
        answer = response.json()
        assert answer["addr"] == CLIENT, "the real client, not HAProxy nor the spoofed X-Forwarded-For"
        assert answer["url"] == f"{haproxy.url}/who" and answer["forwarded_host"] == f"127.0.0.1:{haproxy.port}"
        assert UUID.fullmatch(answer["rid"]) and response.headers["x-request-id"] == answer["rid"]
        record = logged(log, lambda r: r["request_id"] == answer["rid"])
        assert record["client"] == CLIENT and record["path"] == "/who" and record["status"] == 200
        # HAProxy polls ready_path: a 503 takes the server out, a 200 brings it back
        assert logged(log, lambda r: r["path"] == "/readyz")["client"] == "127.0.0.1"
        assert httpx.post(f"http://127.0.0.1:{aeros_port}/ready/off", timeout=10).status_code == 200
        out = wait_for(
            lambda: (r := http.get(haproxy.url + "/who")).status_code == 503 and r, "HAProxy to take aeros out"
        )
        assert "No server is available" in out.text, "HAProxy answered, not aeros"
        assert httpx.post(f"http://127.0.0.1:{aeros_port}/ready/on", timeout=10).status_code == 200
        wait_for(lambda: http.get(haproxy.url + "/who").status_code == 200, "HAProxy to bring aeros back")


@needs_haproxy
def test_haproxy_sigterm_takes_the_server_out_before_it_closes(aeros_server, tools, tmp_path):
    """The documented rolling restart: SIGTERM -> /readyz 503 -> HAProxy marks the server down
    within inter x fall -> aeros closes after drain_delay. Through HAProxy, every answer is aeros's
    200 or HAProxy's own 503 (no server left): never a 502 from a refused or reset connection."""
    process, aeros_port, log = aeros_server()
    haproxy = start_haproxy(tools, tmp_path, haproxy_config(aeros_port, free_port()))
    seen: list[int] = []
    with client() as http:
        wait_for(lambda: http.get(haproxy.url + "/who").status_code == 200, "HAProxy to route to aeros")
        process.signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = http.get(haproxy.url + "/who", headers={"Connection": "close"})
            seen.append(response.status_code)
            if response.status_code == 503:
                assert "No server is available" in response.text, response.text
                break
            assert response.status_code == 200, (response.status_code, response.text)
    assert seen[-1] == 503, f"HAProxy never took the server out: {seen}"
    assert logged(log, lambda r: r["path"] == "/readyz" and r["status"] == 503)["client"] == "127.0.0.1"
    assert process.wait(60) == 0


@needs_haproxy
@pytest.mark.parametrize("server", [name for name in installed_backends() if name in ("hypercorn", "uvicorn")])
def test_haproxy_proxy_protocol_v2(aeros_server, tools, tmp_path, server):
    _process, aeros_port, log = aeros_server(server, proxy_protocol=True)
    haproxy = start_haproxy(tools, tmp_path, haproxy_config(aeros_port, free_port(), proxy_protocol=True))
    with client() as http:
        answer = wait_for(
            lambda: (r := http.get(haproxy.url + "/who")).status_code == 200 and r.json(), "HAProxy to route"
        )
    assert answer["addr"] == CLIENT and UUID.fullmatch(answer["rid"])
    assert logged(log, lambda r: r["request_id"] == answer["rid"])["client"] == CLIENT
    # HAProxy's health checks carry a PROXY header too (check-send-proxy) and pass
    assert logged(log, lambda r: r["path"] == "/readyz")["status"] == 200
    # a client that connects directly (no PROXY header, not a trusted proxy) gets nothing
    with pytest.raises(httpx.HTTPError):
        client().get(f"http://127.0.0.1:{aeros_port}/who")


def test_direct_untrusted_client_cannot_spoof(aeros_server):
    _process, aeros_port, log = aeros_server()
    with client() as http:
        answer = http.get(
            f"http://127.0.0.1:{aeros_port}/who",
            headers={"X-Forwarded-Host": "evil", "X-Forwarded-For": "6.6.6.6", "X-Request-ID": "chosen"},
        ).json()
    assert answer == {
        "addr": CLIENT,
        "url": f"http://127.0.0.1:{aeros_port}/who",
        "rid": answer["rid"],
        "forwarded_host": None,
    }
    assert answer["rid"] != "chosen"
    record = logged(log, lambda r: r["request_id"] == answer["rid"])
    assert record["client"] == CLIENT and "evil" not in log.read_text() and "6.6.6.6" not in log.read_text()


# --- nginx -----------------------------------------------------------------------------------


@needs_nginx
def test_nginx_real_client_and_request_id(aeros_server, tools, tmp_path):
    _process, aeros_port, log = aeros_server()
    port = free_port()
    site = block("nginx", "proxy_set_header X-Request-ID")
    site = substitute(site, "listen 80;", f"listen 127.0.0.1:{port};")
    site = substitute(site, "server 127.0.0.1:8000", f"server 127.0.0.1:{aeros_port}")
    (tmp_path / "site.conf").write_text(site)
    temp = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n    include {tmp_path / 'site.conf'};\n}}\n"
    )
    tools.append(
        Tool(
            ["nginx", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")],
            port,
            tmp_path / "nginx.out",
        )
    )
    with client() as http:
        response = wait_for(
            lambda: (
                (r := http.get(f"http://127.0.0.1:{port}/who", headers={"X-Forwarded-Host": "evil"})).status_code == 200
                and r
            ),
            "nginx to route to aeros",
        )
    answer = response.json()
    assert answer["addr"] == CLIENT and answer["url"] == "http://127.0.0.1/who"  # nginx's $host has no port
    assert re.fullmatch(r"[0-9a-f]{32}", answer["rid"]) and response.headers["x-request-id"] == answer["rid"]
    record = logged(log, lambda r: r["request_id"] == answer["rid"])
    assert record["client"] == CLIENT and "evil" not in log.read_text()


# --- configurations that cannot run here: they parse and match the documented keywords -------


def test_documented_keywords_fit_together():
    keywords = documented_run_keywords()
    assert keywords["ready_path"] and keywords["health_path"] and keywords["drain_delay"] > 0
    haproxy = block("haproxy", "frontend www")
    inter, fall = re.search(r"inter (\d+)s fall (\d+)", haproxy).groups()
    assert int(inter) * int(fall) < keywords["drain_delay"], "HAProxy must notice the 503 within drain_delay"
    assert f"option httpchk GET {keywords['ready_path']}" in haproxy
    assert f"option httpchk GET {keywords['ready_path']}" in block("haproxy", "send-proxy-v2")


def test_kubernetes_manifest_parses_and_matches():
    yaml = pytest.importorskip("yaml")
    keywords = documented_run_keywords()
    manifest = yaml.safe_load(block("yaml", "kind: Deployment"))
    assert manifest["kind"] == "Deployment" and manifest["apiVersion"] == "apps/v1"
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == keywords["ready_path"]
    assert container["livenessProbe"]["httpGet"]["path"] == keywords["health_path"]
    assert pod["terminationGracePeriodSeconds"] > keywords["drain_delay"] + keywords["graceful_timeout"]
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < keywords["drain_delay"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert readiness["httpGet"]["port"] in ports and ports["http"] == 8000
    assert manifest["spec"]["selector"]["matchLabels"] == manifest["spec"]["template"]["metadata"]["labels"]


def test_dockerfile_parses_and_matches():
    keywords = documented_run_keywords()
    text = block("dockerfile", "FROM ")
    instructions = [line.split()[0] for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()]
    known = {"FROM", "WORKDIR", "COPY", "RUN", "ENV", "EXPOSE", "USER", "STOPSIGNAL", "HEALTHCHECK", "CMD"}
    assert set(instructions) <= known and instructions[0] == "FROM" and instructions[-1] == "CMD"
    assert "EXPOSE 8000" in text and "PORT=8000" in text and "HOST=0.0.0.0" in text
    assert f"127.0.0.1:8000{keywords['health_path']}" in text
    cmd = re.search(r"^CMD (.*)$", text, re.MULTILINE).group(1)
    assert json.loads(cmd) == ["python", "app.py"], "exec form, so SIGTERM reaches Python"
    stop_time = re.search(r"docker stop --time (\d+)", PAGE.read_text()).group(1)
    assert int(stop_time) > keywords["drain_delay"] + keywords["graceful_timeout"]


def systemd_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a systemd setting: {line!r}"
        name, _, value = line.partition("=")
        current.setdefault(name.strip(), []).append(value.strip())
    return sections


def test_systemd_units_parse_and_match(tmp_path):
    keywords = documented_run_keywords()
    socket_unit = systemd_unit(block("ini", "listening socket"))
    service = systemd_unit(block("ini", "[Service]"))
    assert socket_unit["Socket"]["ListenStream"] == ["127.0.0.1:8000"]
    assert "shop.socket" in service["Unit"]["Requires"][0]
    assert int(service["Service"]["TimeoutStopSec"][0]) > keywords["drain_delay"] + keywords["graceful_timeout"]
    assert service["Service"]["KillSignal"] == ["SIGTERM"]
    if shutil.which("systemd-analyze"):  # systemd's own checker, where it is installed
        (tmp_path / "shop.socket").write_text(block("ini", "listening socket"))
        service_text = substitute(
            block("ini", "[Service]"), "/srv/shop/.venv/bin/python app.py", f"{sys.executable} app.py"
        )
        (tmp_path / "shop.service").write_text(service_text)
        verified = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", "shop.socket", "shop.service"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
