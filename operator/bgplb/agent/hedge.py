"""Lease renewals that survive a lossy link: hedged attempts.

One renewal stuck behind a lost SYN (a second to retransmit) or a segment lost twice
(0.2 s, then 0.4 s) used to hold the whole time left before the fencing deadline:
the soak's 5 % lossy link fenced its node once in ten minutes (CI, 2026-12-01). A
round now starts another attempt, on another connection, whenever the newest has not
answered within `hedge_after`, and at once when one fails, until one succeeds or the
deadline passes. Every attempt's own timeout ends at the deadline, and the caller
counts a success from the round's start: a straggler that lands late writes a
renewTime no older than the one the agent counts from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bgplb.agent.fencing import RETRY_AFTER_FAILURE

HEDGE_AFTER = 0.25
"""Seconds without an answer before another attempt starts: a healthy renewal on the
lab's 2 cores answers in ~10-30 ms; a lost segment costs at least TCP's 200 ms RTO."""
AT_ONCE = 3
"""Attempts in flight at most: bounded load on an API server that is merely slow."""
TOO_LATE = 0.05
"""No attempt starts with less time than this before the deadline."""


async def first_success(
    attempt: Callable[[float], Awaitable[None]],
    deadline: float,
    *,
    hedge_after: float = HEDGE_AFTER,
    at_once: int = AT_ONCE,
) -> None:
    """Runs `attempt(timeout)` until one succeeds; raises the last failure (or
    TimeoutError) once the `deadline` (time.monotonic) passes without one. Attempts
    still running then are abandoned: their timeouts end at the deadline."""
    running: set[asyncio.Task[None]] = set()
    last_error: BaseException | None = None
    next_start = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_start and len(running) < at_once and deadline - now >= TOO_LATE:
                running.add(asyncio.ensure_future(attempt(deadline - now)))
                next_start = now + hedge_after
            wait = max(0.0, min(next_start, deadline) - time.monotonic())
            if not running:
                if deadline - time.monotonic() < TOO_LATE:
                    break
                await asyncio.sleep(wait)
                continue
            done, _ = await asyncio.wait(running, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                running.discard(task)
                error = task.exception()
                if error is None:
                    return
                last_error = error
                next_start = min(next_start, time.monotonic() + RETRY_AFTER_FAILURE)
    finally:
        for task in running:
            task.cancel()
    if last_error is not None:
        raise last_error
    raise TimeoutError("no renewal answered before the deadline")
