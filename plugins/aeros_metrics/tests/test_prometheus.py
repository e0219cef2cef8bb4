"""A real Prometheus scraping a real ``workers=4`` instance under load sees every request.

The check of issue 15: Prometheus's own query API shows ``sum(http_server_requests_total)``
equal to the number of requests the load generator got answers to, once a scrape after the
load has landed, and still after a worker was SIGKILLed in the middle of the load (its counts
survive it; the supervisor's restart counter says why).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from aeros_core.testing import wait_for

pytestmark = pytest.mark.slow

APP = """
    import os
    import sys
    from aeros import WebServer

    app = WebServer(__name__, metrics=True)

    @app.route("/pid")
    async def pid():
        return str(os.getpid())

    @app.route("/items/<int:number>")
    async def item(number):
        return {"number": number, "pid": os.getpid()}

    if __name__ == "__main__":
        app.run(port=0, workers=4, access_log_to_std=False)
"""


class Load:
    """``threads`` clients sending requests to distinct URLs of one rule; counts the answers."""

    def __init__(self, url: str, threads: int = 8) -> None:
        self.url = url
        self.threads = threads
        self.answered = 0  # 200s received
        self.failed = 0  # connection errors: the request may or may not have been counted
        self.pids: set[str] = set()
        self.last_pid = 0
        self.lock = threading.Lock()

    def run(self, requests: int, halfway: threading.Event | None = None) -> None:
        target = self.answered + requests
        half = self.answered + requests // 2
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=10) as session:
                number = 0
                while not stop.is_set():
                    number += 1
                    try:
                        response = session.get(f"{self.url}/items/{number}")
                    except httpx.HTTPError:
                        with self.lock:
                            self.failed += 1
                        continue
                    assert response.status_code == 200, response.text
                    with self.lock:
                        self.last_pid = response.json()["pid"]
                        self.pids.add(str(self.last_pid))
                        self.answered += 1
                        if self.answered >= target:
                            stop.set()
                        if halfway is not None and self.answered >= half:
                            halfway.set()

        workers = [threading.Thread(target=client) for _ in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers), "the load generator hung"


def settled_sum(prometheus, after: float, expression: str = "sum(http_server_requests_total)") -> float | None:
    """The value once a scrape that started after ``after`` is in Prometheus."""
    if not wait_for(lambda: prometheus.scrapes_since(after), 15, 0.2):
        return None
    return prometheus.query(expression)


def test_prometheus_counts_every_request_of_four_workers_also_after_a_sigkill(app_process, prometheus):
    server = app_process(APP)
    url = server.wait_ready("/metrics")  # scrapes are not counted: every counted request is the load's
    scraper = prometheus(url.removeprefix("http://"))
    assert wait_for(lambda: prometheus_up(scraper), 15, 0.2), "prometheus never scraped the app"

    load = Load(url)
    load.run(1200)
    assert len(load.pids) >= 2, f"the load reached only {load.pids}"
    first = settled_sum(scraper, time.time())
    first_answered = load.answered
    assert first == load.answered, f"prometheus says {first}, the load generator got {load.answered} answers"

    # Again, killing one worker with SIGKILL when half of the requests are answered.
    halfway = threading.Event()
    victim: list[int] = []

    def kill_one() -> None:
        if halfway.wait(60):
            with load.lock:
                victim.append(load.last_pid)
            os.kill(victim[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    killer.start()
    load.run(1200, halfway)
    killer.join(10)
    assert victim, "no worker was killed"
    total = settled_sum(scraper, time.time())
    assert total is not None
    # A request in flight on the killed worker fails at the client; it may have been counted
    # just before the kill. Every answered request is counted, and none twice.
    assert load.answered <= total <= load.answered + load.failed, (
        f"prometheus says {total}; answered {load.answered}, failed {load.failed}"
    )
    restarts = scraper.query('sum(aeros_worker_restarts_total{reason="killed"})')
    assert restarts == 1, f"aeros_worker_restarts_total: {restarts}"
    print(
        f"prometheus sum(http_server_requests_total): {first:.0f} after the first load (answered {first_answered}),"
        f" {total:.0f} after the SIGKILL of pid {victim[0]} (answered {load.answered}, failed {load.failed})"
    )


def prometheus_up(scraper) -> bool:
    return scraper.query('up{job="aeros"}') == 1
