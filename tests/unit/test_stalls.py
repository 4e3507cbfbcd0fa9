"""The stall watch: a blocked event loop and a busy process are reported as such."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from bgplb.agent import stalls


def busy(seconds: float) -> float:
    """Holds the GIL and the CPU (a long call in C would do the same) until this
    process has had `seconds` of CPU: on a loaded machine that takes longer than
    `seconds` (a local run beside a lab had 0.15 s of CPU in 0.6 s). Returns the wall
    time it took."""
    started = time.monotonic()
    end = time.process_time() + seconds
    while time.process_time() < end and time.monotonic() - started < 20 * seconds:
        pass
    return time.monotonic() - started


def stalled(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "agent stalled"]


def test_a_blocked_loop_is_reported_with_the_cpu_it_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        watch = asyncio.create_task(stalls.watch_loop())
        await asyncio.sleep(0.3)
        assert not stalled(caplog)  # on time while nothing blocks
        blocked.append(busy(0.6))  # the loop cannot run the watch meanwhile
        await asyncio.sleep(0.15)
        watch.cancel()

    blocked: list[float] = []
    with caplog.at_level(logging.WARNING, "bgplb.agent"):
        asyncio.run(scenario())
    records = [r for r in stalled(caplog) if getattr(r, "where", "") == "event_loop"]
    assert len(records) == 1
    lag, cpu = records[0].seconds, records[0].cpu_seconds  # type: ignore[attr-defined]
    assert 0.4 <= lag <= blocked[0] + 0.1
    assert cpu >= 0.3  # busy, not starved: the process itself ran


def test_a_thread_that_wakes_on_time_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = stalls.ThreadWatch()
    with caplog.at_level(logging.WARNING, "bgplb.agent"):
        watch.start()
        time.sleep(0.35)  # releases the GIL: the thread wakes on time
        watch.stop()
    assert not stalled(caplog)


def test_late_is_never_negative() -> None:
    assert stalls.late(10.0, 9.5) == 0.0
    assert stalls.late(10.0, 10.4) == pytest.approx(0.4)


def test_a_stall_says_how_long_the_collector_ran_in_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalls.freeze()
    garbage = []
    for _ in range(200_000):
        cycle: list[object] = []
        cycle.append(cycle)  # only the collector frees a cycle
        garbage.append(cycle)
    with caplog.at_level(logging.WARNING, "bgplb.agent"):
        mark = stalls.Mark()
        del garbage
        gc.collect()
        busy(0.45)  # late by 0.35 s at least: reported
        mark.report("thread")
    (record,) = stalled(caplog)
    assert record.gc_seconds > 0  # type: ignore[attr-defined]
    assert record.cpu_seconds >= record.gc_seconds  # type: ignore[attr-defined]


def test_frozen_objects_are_left_out_of_later_collections() -> None:
    stalls.freeze()
    assert gc.get_freeze_count() > 10_000  # every module's objects, at least
