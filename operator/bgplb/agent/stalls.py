"""How late the agent wakes: its event loop, and a thread of its own.

The mesh holds a node for dead after ~0.65 s unheard, and the agent fences 2 s after
its last renewal round began; an agent that does not run for a second looks dead to
both. Whether that happens, and why, is what this module tells: every PERIOD the
event loop and a thread each note how late they woke. A late loop with an on-time
thread is the agent's own work blocking the loop; both late together is the whole
process — with its CPU time during the stall telling a held GIL (the process was
busy: one long call in C, a garbage collection) from the kernel not running it
(CPU contention: its cgroup's share), and the time spent collecting garbage
meanwhile telling which busy.

The soak found the busiest node's agent stalled 0.78 s, thread and loop together,
having used 0.12 s of CPU: a burst of work holding the GIL, stretched sevenfold by
the CPU share it gets under contention. The likeliest burst is a full collection,
which walks every object the imported libraries made (~80,000, ~40 ms of CPU here):
`freeze` moves them out of the collector's way once the agent is set up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from typing import Any

from bgplb.agent import metrics

log = logging.getLogger("bgplb.agent")

PERIOD = 0.1
"""Seconds between wake-ups (the mesh's probe interval)."""
REPORT_AFTER = 0.25
"""A wake-up this late is logged: a quarter of a renewal period, over a third of the
mesh's silence threshold."""


class Collections:
    """Wall time spent in the garbage collector so far (a gc.callbacks entry)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        else:
            self.seconds += time.monotonic() - self._started


COLLECTIONS = Collections()


def freeze() -> None:
    """Leaves everything made so far (modules, clients, the agent) out of every later
    collection, and starts timing the collections."""
    gc.collect()
    gc.freeze()
    if COLLECTIONS not in gc.callbacks:
        gc.callbacks.append(COLLECTIONS)


def late(expected: float, woke: float) -> float:
    return max(0.0, woke - expected)


def report(where: str, lag: float, cpu: float, collecting: float) -> None:
    metrics.STALL_SECONDS.labels(where).observe(lag)
    if lag >= REPORT_AFTER:
        log.warning(
            "agent stalled",
            extra={
                "where": where,
                "seconds": round(lag, 3),
                "cpu_seconds": round(cpu, 3),
                "gc_seconds": round(collecting, 3),
            },
        )


class Mark:
    """Where a wake-up's clocks stood when it went to sleep."""

    def __init__(self) -> None:
        self.expected = time.monotonic() + PERIOD
        self.cpu = time.process_time()
        self.collecting = COLLECTIONS.seconds

    def report(self, where: str) -> None:
        report(
            where,
            late(self.expected, time.monotonic()),
            time.process_time() - self.cpu,
            COLLECTIONS.seconds - self.collecting,
        )


async def watch_loop() -> None:
    """Runs on the event loop until cancelled."""
    while True:
        mark = Mark()
        await asyncio.sleep(PERIOD)
        mark.report("event_loop")


class ThreadWatch:
    """The same from a thread: it needs the kernel to run the process and the GIL."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="stall-watch", daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while True:
            mark = Mark()
            if self.stopped.wait(PERIOD):
                return
            mark.report("thread")
