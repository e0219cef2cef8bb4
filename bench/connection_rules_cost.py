#!/usr/bin/env python3
"""What the connection rules add per request, measured on the code itself:
``taskset -c 0 .venv/bin/python bench/connection_rules_cost.py``.

* h11: one keep-alive request/response cycle through ``h11.Connection`` and through aeros's
  ``StrictH11Connection`` (framing checks, Connection: close in the drain), same bytes: a GET,
  and a POST with a chunked body (two chunks, in two reads after the head);
* the ConnectionTable transitions a backend reports per request (head started, request started,
  body complete, idle).

Prints the median of several rounds (CPU time of this process), in µs per request.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import h11

from aeros_core.builtins.connections import ConnectionTable
from aeros_core.builtins.h11_connection import StrictH11Connection

REQUEST = b"GET /hello HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nuser-agent: wrk\r\naccept: */*\r\n\r\n"
CHUNKED_HEAD = b"POST /upload HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ntransfer-encoding: chunked\r\n\r\n"
CHUNKS = (b"400\r\n" + b"x" * 1024 + b"\r\n", b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n")
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
ROUNDS, N = 7, 5000


def h11_cycle(connection: h11.Connection) -> None:
    connection.receive_data(REQUEST)
    connection.next_event()  # Request
    connection.next_event()  # EndOfMessage
    connection.send(h11.Response(status_code=200, headers=HEADERS))
    connection.send(h11.Data(data=b"Hello, World!"))
    connection.send(h11.EndOfMessage())
    connection.start_next_cycle()


def h11_chunked_cycle(connection: h11.Connection) -> None:
    connection.receive_data(CHUNKED_HEAD)
    connection.next_event()  # Request
    for chunk in CHUNKS:
        connection.receive_data(chunk)
        while connection.next_event() is not h11.NEED_DATA:  # Data, then EndOfMessage
            if connection.their_state is h11.DONE:
                break
    connection.send(h11.Response(status_code=200, headers=HEADERS))
    connection.send(h11.Data(data=b"Hello, World!"))
    connection.send(h11.EndOfMessage())
    connection.start_next_cycle()


def per_request(run, rounds: int = ROUNDS) -> float:
    results = []
    for _ in range(rounds):
        started = time.process_time()
        run()
        results.append((time.process_time() - started) / N * 1e6)
    return statistics.median(results)


async def main() -> None:
    plain = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
    strict = StrictH11Connection(16384)
    for name, cycle in (("h11 cycle (GET)", h11_cycle), ("h11 cycle (chunked POST)", h11_chunked_cycle)):
        base_runs, our_runs = [], []
        for _ in range(ROUNDS * 2):  # interleaved: the machine's noise hits both alike
            base_runs.append(per_request(lambda: [cycle(plain) for _ in range(N)], 1))
            our_runs.append(per_request(lambda: [cycle(strict) for _ in range(N)], 1))
        base, ours = statistics.median(base_runs), statistics.median(our_runs)
        print(f"{name}: h11.Connection {base:.2f} µs, StrictH11Connection {ours:.2f} µs: +{ours - base:.2f} µs")

    table = ConnectionTable(1000, 10.0, "bench")
    connection = table.open(lambda: None)
    assert connection is not None

    def transitions() -> None:
        for _ in range(N):
            phase = connection.phase
            if phase == 0:
                connection.head_started()
            connection.request_started(body=False)
            connection.body_complete()
            connection.idle()

    cost = per_request(transitions)
    print(f"ConnectionTable transitions per request: {cost:.2f} µs")
    table.close()


if __name__ == "__main__":
    asyncio.run(main())
