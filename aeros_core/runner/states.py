"""The supervisor's life, as a table: every signal and every worker event is a transition.

::

    state       event               action                  next state
    ----------  ------------------  ----------------------  ----------
    (see TRANSITIONS below; docs/deployment.md draws the same table)

An event without a row for the current state is ignored (e.g. a second SIGTERM while
draining). :class:`~aeros_core.runner.workers.Supervisor` has one method per action.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    STARTING = "starting"  #: workers started, not all serving yet
    SERVING = "serving"
    RELOADING = "reloading"  #: SIGHUP: a new supervisor (same command line, same sockets) starts
    DRAINING = "draining"  #: workers finish their requests in flight
    STOPPED = "stopped"


class Event(enum.Enum):
    WORKERS_READY = "every worker serves"
    STOP = "SIGTERM or SIGINT"
    FORCE = "second SIGINT"
    RELOAD = "SIGHUP"
    SUCCESSOR_READY = "the new supervisor's workers serve"
    SUCCESSOR_FAILED = "the new supervisor exited before serving"
    WORKER_DIED = "a worker exited unexpectedly"
    WORKER_STUCK = "a worker's event loop did not tick for worker_timeout"
    WORKER_RECYCLE = "a worker passed max_requests or max_worker_memory"
    REPLACEMENT_READY = "a recycled worker's replacement serves"
    GIVE_UP = "workers keep failing before they serve"
    DRAIN_DELAY_PASSED = "drain_delay passed since the stop"
    WORKERS_GONE = "every worker exited"
    GRACE_EXPIRED = "graceful_timeout passed and workers remain"


S, E = State, Event

#: (state, event) -> (action, next state)
TRANSITIONS: dict[tuple[State, Event], tuple[str, State]] = {
    (S.STARTING, E.WORKERS_READY): ("announce", S.SERVING),
    (S.STARTING, E.WORKER_DIED): ("replace_worker", S.STARTING),
    (S.STARTING, E.WORKER_STUCK): ("replace_worker", S.STARTING),
    (S.STARTING, E.GIVE_UP): ("stop_workers", S.DRAINING),
    (S.STARTING, E.STOP): ("stop_workers", S.DRAINING),
    (S.STARTING, E.RELOAD): ("start_successor", S.RELOADING),
    (S.SERVING, E.STOP): ("stop_workers", S.DRAINING),
    (S.SERVING, E.RELOAD): ("start_successor", S.RELOADING),
    (S.SERVING, E.WORKER_DIED): ("replace_worker", S.SERVING),
    (S.SERVING, E.WORKER_STUCK): ("replace_worker", S.SERVING),
    (S.SERVING, E.WORKER_RECYCLE): ("replace_worker", S.SERVING),
    (S.SERVING, E.REPLACEMENT_READY): ("hand_over_worker", S.SERVING),
    (S.SERVING, E.GIVE_UP): ("stop_workers", S.DRAINING),
    (S.RELOADING, E.SUCCESSOR_READY): ("hand_over_all", S.DRAINING),
    (S.RELOADING, E.SUCCESSOR_FAILED): ("keep_serving", S.SERVING),
    (S.RELOADING, E.WORKER_DIED): ("replace_worker", S.RELOADING),
    (S.RELOADING, E.WORKER_STUCK): ("replace_worker", S.RELOADING),
    (S.RELOADING, E.REPLACEMENT_READY): ("hand_over_worker", S.RELOADING),
    (S.RELOADING, E.STOP): ("stop_all", S.DRAINING),
    (S.DRAINING, E.DRAIN_DELAY_PASSED): ("close_sockets", S.DRAINING),
    (S.DRAINING, E.WORKERS_GONE): ("finish", S.STOPPED),
    (S.DRAINING, E.GRACE_EXPIRED): ("kill_workers", S.STOPPED),
    (S.DRAINING, E.FORCE): ("kill_workers", S.STOPPED),
}


def step(state: State, event: Event) -> tuple[str, State] | None:
    """The action and next state for ``event`` in ``state``; None: the event is ignored there."""
    return TRANSITIONS.get((state, event))


def table() -> str:
    """The transitions as text (for the docs and ``python -m aeros_core.runner.states``)."""
    rows = [f"{s.value:<10}  {e.name:<18}  {a:<17}  {n.value}" for (s, e), (a, n) in TRANSITIONS.items()]
    return "\n".join([f"{'state':<10}  {'event':<18}  {'action':<17}  next", *rows])


if __name__ == "__main__":  # pragma: no cover
    print(table())
