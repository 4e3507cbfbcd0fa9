"""Hedged Lease renewals (agent/hedge.py), on asyncio's clock with short times."""

from __future__ import annotations

import asyncio
import time

import pytest

from bgplb.agent.hedge import first_success


class Api:
    """Attempts that behave as scripted, in order: a float stalls that long (a lost
    SYN, a segment lost twice) then succeeds, unless the attempt's timeout is shorter;
    an exception is raised at once."""

    def __init__(self, *script: float | Exception) -> None:
        self.script = list(script)
        self.started: list[float] = []
        self.timeouts: list[float] = []

    async def __call__(self, timeout: float) -> None:
        self.started.append(time.monotonic())
        self.timeouts.append(timeout)
        step = self.script.pop(0) if self.script else 0.01
        if isinstance(step, Exception):
            raise step
        if step > timeout:
            await asyncio.sleep(timeout)
            raise TimeoutError("read timed out")
        await asyncio.sleep(step)


def run(api: Api, within: float, **kw: float) -> tuple[float, BaseException | None]:
    async def go() -> tuple[float, BaseException | None]:
        t0 = time.monotonic()
        try:
            await first_success(api, t0 + within, **kw)  # type: ignore[arg-type]
        except Exception as e:
            return time.monotonic() - t0, e
        return time.monotonic() - t0, None

    return asyncio.run(go())


def test_a_stalled_attempt_is_hedged_before_the_deadline() -> None:
    """The soak's fence: one renewal stalled for the whole second before the
    deadline. Now a second attempt starts after `hedge_after` and wins."""
    api = Api(5.0)
    took, error = run(api, within=1.0, hedge_after=0.2)
    assert error is None
    assert len(api.started) == 2
    assert 0.2 <= took < 0.6
    assert api.timeouts[0] == pytest.approx(1.0, abs=0.05)  # every attempt ends by the deadline
    assert api.timeouts[1] == pytest.approx(0.8, abs=0.05)


def test_a_fast_failure_is_retried_at_once() -> None:
    api = Api(ConnectionResetError("reset"), ConnectionResetError("reset"))
    took, error = run(api, within=1.0, hedge_after=0.5)
    assert error is None
    assert len(api.started) == 3
    assert took < 0.4  # not after two hedge intervals


def test_at_most_at_once_attempts_in_flight() -> None:
    api = Api(5.0, 5.0, 5.0, 5.0, 5.0, 5.0)
    took, error = run(api, within=0.6, hedge_after=0.1, at_once=3)
    assert isinstance(error, TimeoutError)
    assert len(api.started) == 3
    assert 0.6 <= took < 0.9  # gives up at the deadline, not at the attempts' own


def test_the_last_failure_is_raised_once_the_deadline_passes() -> None:
    api = Api(*[PermissionError("forbidden")] * 100)
    took, error = run(api, within=0.3)
    assert isinstance(error, PermissionError)
    assert took < 0.5
    # Bounded: one attempt per RETRY_AFTER_FAILURE at most, not a busy loop.
    assert 3 <= len(api.started) <= 0.3 / 0.05 + 2


def test_nothing_starts_past_the_deadline() -> None:
    api = Api()
    _, error = run(api, within=0.0)
    assert isinstance(error, TimeoutError)
    assert api.started == []
