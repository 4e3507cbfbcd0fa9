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
        self.changed_at: list[float | None] = []

    async def run_once(self, changed_at: float | None = None) -> int:
        self.count += 1
        self.changed_at.append(changed_at)
        self.ran.set()
        return 0


def _added(c: Controller, name: str) -> None:
    c.observe(c.state.services, f"default/{name}", {"type": "ADDED", "object": {"n": name}})


def test_a_lone_change_is_planned_at_once_and_a_burst_waits_for_the_debounce() -> None:
    async def scenario() -> tuple[int, int, int]:
        c = Controller("kube-system", "me", debounce=30.0, burst_gap=0.2)
        c.synced, c.synced_at = True, -1e9
        c.leading.set()
        passes = Passes()
        c.reconciler = passes  # type: ignore[assignment]
        task = asyncio.create_task(c.run())
        try:
            _added(c, "a")
            # With the debounce in front of every pass, this would take 30 s.
            await asyncio.wait_for(passes.ran.wait(), 5)
            first = passes.count
            # A change 0.3 s after the last, just after a pass (a create after the
            # passes its predecessor's statuses caused): on its own, planned at once.
            await asyncio.sleep(0.3)
            passes.ran.clear()
            _added(c, "b")
            await asyncio.wait_for(passes.ran.wait(), 5)
            second = passes.count
            # A burst: its first change is planned at once (nothing says a burst has
            # begun), the changes hard on its heels are gathered, here for 30 s.
            await asyncio.sleep(0.3)
            passes.ran.clear()
            _added(c, "c")
            await asyncio.wait_for(passes.ran.wait(), 5)
            _added(c, "d")
            await asyncio.sleep(0.5)
            return first, second, passes.count
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert asyncio.run(scenario()) == (1, 2, 3)


class Looks:
    """Counts the loop's looks at the Leases; a loop spinning without yielding never
    lets the test's own sleep end, so the 1,001st look ends it."""

    def __init__(self, c: Controller) -> None:
        self.count = 0
        self.real = c.live_nodes
        c.live_nodes = self  # type: ignore[method-assign]

    def __call__(self) -> frozenset[str]:
        self.count += 1
        if self.count > 1000:
            raise RuntimeError("spinning")
        return self.real()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, RuntimeError):
        await task


def test_a_follower_waits_for_leadership_without_spinning() -> None:
    """An event seen by a follower left the trigger set: its loop woke at once, over
    and over, one CPU core at 100 % in the lab (found by measuring each process's
    CPU there). It wakes every 250 ms, and the event is planned once it leads."""

    async def scenario() -> tuple[int, int]:
        c = Controller("kube-system", "me")
        c.synced, c.synced_at = True, -1e9
        passes = Passes()
        c.reconciler = passes  # type: ignore[assignment]
        looks = Looks(c)
        task = asyncio.create_task(c.run())
        try:
            c.trigger.set()
            await asyncio.sleep(1.0)
            following = looks.count
            c.leading.set()
            await asyncio.wait_for(passes.ran.wait(), 5)
            return following, passes.count
        finally:
            await _stop(task)

    following, count = asyncio.run(scenario())
    assert following <= 6
    assert count == 1


def test_a_leader_holding_off_waits_without_spinning() -> None:
    async def scenario() -> int:
        c = Controller("kube-system", "me")
        c.synced, c.synced_at = True, -1e9
        c.leading.set()
        c.frozen_live = frozenset()  # the API server unreachable: no passes
        c.reconciler = Passes()  # type: ignore[assignment]
        looks = Looks(c)
        task = asyncio.create_task(c.run())
        try:
            c.trigger.set()
            await asyncio.sleep(1.0)
            return looks.count
        finally:
            await _stop(task)

    assert asyncio.run(scenario()) <= 6


def test_the_index_handlers_run_on_the_event_loops_thread() -> None:
    """kopf runs a plain function handler in a thread pool. Ours change the index
    and set the loop's trigger, an asyncio.Event only the loop's thread may touch:
    from a thread, CI saw "deque mutated during iteration" lose an EndpointSlice's
    trigger (the no-endpoint drill then waited in vain), and a trigger set from a
    thread does not wake the loop until its next timeout."""
    import threading

    import kopf
    from kopf._core.actions.invocation import invoke

    from bgplb.controller import main

    seen: list[int] = []

    class Recording(Controller):
        def _route(self, kind: str, event: object) -> None:
            seen.append(threading.get_ident())

    main._PROCESS["controller"] = Recording("kube-system", "me")
    main._register()
    handlers = kopf.get_default_registry()._watching.get_all_handlers()
    assert handlers

    async def scenario() -> None:
        for handler in handlers:
            await invoke(handler.fn, kwargs={"event": {"type": "ADDED", "object": {}}})

    try:
        asyncio.run(scenario())
    finally:
        main._PROCESS.pop("controller", None)
    assert set(seen) == {threading.get_ident()}


def test_a_pass_is_timed_from_the_first_change_it_acts_on() -> None:
    """Two index changes before a pass: it is timed from the first; the next pass,
    with no change of its own (a Lease expiring), from none."""

    async def scenario() -> tuple[list[float | None], float, float]:
        c = Controller("kube-system", "me", debounce=0.0)
        c.synced, c.synced_at = True, -1e9
        c.leading.set()
        passes = Passes()
        c.reconciler = passes  # type: ignore[assignment]
        before = asyncio.get_running_loop().time()
        c.observe(c.state.services, "default/a", {"type": "ADDED", "object": {"x": 1}})
        first = c.changed_at
        assert first is not None
        await asyncio.sleep(0.05)
        c.observe(c.state.services, "default/b", {"type": "ADDED", "object": {"x": 2}})
        task = asyncio.create_task(c.run())
        try:
            await asyncio.wait_for(passes.ran.wait(), 5)
            passes.ran.clear()
            c.trigger.set()  # a pass for something other than an index change
            await asyncio.wait_for(passes.ran.wait(), 5)
            return passes.changed_at, first, before
        finally:
            await _stop(task)

    changed_at, first, before = asyncio.run(scenario())
    assert changed_at == [first, None]
    assert first >= before
