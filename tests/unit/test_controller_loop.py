"""The controller's loop: a lone event is planned at once, a burst is gathered."""

from __future__ import annotations

import asyncio
import contextlib

from bgplb.controller.main import Controller


class Passes:
    """Stands in for the Reconciler: counts passes."""

    again_at: float | None = None
    drain_at: float | None = None

    def __init__(self) -> None:
        self.count = 0
        self.ran = asyncio.Event()

    async def run_once(self) -> int:
        self.count += 1
        self.ran.set()
        return 0


def test_a_lone_event_is_planned_at_once_and_a_burst_waits_for_the_debounce() -> None:
    async def scenario() -> tuple[int, int]:
        c = Controller("kube-system", "me", debounce=30.0, quiet=60.0)
        c.synced, c.synced_at = True, -1e9
        c.leading.set()
        passes = Passes()
        c.reconciler = passes  # type: ignore[assignment]
        task = asyncio.create_task(c.run())
        try:
            c.trigger.set()
            # With the debounce in front of every pass, this would take 30 s.
            await asyncio.wait_for(passes.ran.wait(), 5)
            first = passes.count
            # An event right after that pass: a burst under way, gathered for 30 s.
            c.trigger.set()
            await asyncio.sleep(0.5)
            return first, passes.count
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert asyncio.run(scenario()) == (1, 1)
