"""How late the agent wakes: its event loop, and a thread of its own.

The mesh holds a node for dead after ~0.65 s unheard, and the agent fences 2 s after
its last renewal round began; an agent that does not run for a second looks dead to
both. Whether that happens, and why, is what this module tells: every PERIOD the
event loop and a thread each note how late they woke. A late loop with an on-time
thread is the agent's own work blocking the loop; both late together is the whole
process — with its CPU time during the stall telling a held GIL (the process was
busy: one long call in C, a garbage collection) from the kernel not running it
(CPU contention: its cgroup's share).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from bgplb.agent import metrics

log = logging.getLogger("bgplb.agent")

PERIOD = 0.1
"""Seconds between wake-ups (the mesh's probe interval)."""
REPORT_AFTER = 0.25
"""A wake-up this late is logged: a quarter of a renewal period, over a third of the
mesh's silence threshold."""


def late(expected: float, woke: float) -> float:
    return max(0.0, woke - expected)


def report(where: str, lag: float, cpu: float) -> None:
    metrics.STALL_SECONDS.labels(where).observe(lag)
    if lag >= REPORT_AFTER:
        log.warning(
            "agent stalled",
            extra={"where": where, "seconds": round(lag, 3), "cpu_seconds": round(cpu, 3)},
        )


async def watch_loop() -> None:
    """Runs on the event loop until cancelled."""
    while True:
        expected, cpu = time.monotonic() + PERIOD, time.process_time()
        await asyncio.sleep(PERIOD)
        report("event_loop", late(expected, time.monotonic()), time.process_time() - cpu)


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
            expected, cpu = time.monotonic() + PERIOD, time.process_time()
            if self.stopped.wait(PERIOD):
                return
            report("thread", late(expected, time.monotonic()), time.process_time() - cpu)
