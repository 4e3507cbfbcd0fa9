"""The gobgpd watch loop on a node without that daemon (a worker has no control-plane
speaker): it backs off, and the read-only speaker never wakes a reconcile. The soak
found the old loop waking a full reconcile twice a second there, starving the agent
under CPU stress until its Lease renewal came late and it fenced."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, cast

from bgplb.agent.main import Agent, watch_retry_delay
from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PeerStatus


class CountingSpeaker(GoBGPSpeaker):
    attempts = 0

    def watch(self) -> AsyncIterator[PeerStatus]:
        self.attempts += 1
        return super().watch()


def test_retry_delays_double_to_five_seconds() -> None:
    assert [watch_retry_delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


async def _run_for(seconds: float, replays: bool) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        missing = CountingSpeaker(f"unix://{Path(tmp) / 'gobgpd.sock'}")
        agent = Agent(
            node="n4",
            node_ip=IPv4Address("192.0.2.14"),
            source=cast(Any, None),
            service=missing,
            control_plane=None,
            floating=cast(Any, None),
            writer=cast(Any, None),
        )
        wakes = 0

        async def count_wakes() -> None:
            nonlocal wakes
            while True:
                await agent.wake.wait()
                agent.wake.clear()
                wakes += 1

        counter = asyncio.create_task(count_wakes())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(agent.watch_loop(missing, replays=replays), seconds)
        counter.cancel()
        await missing.close()
        return missing.attempts, wakes


def test_a_missing_read_only_speaker_is_retried_with_backoff_and_wakes_nothing() -> None:
    attempts, wakes = asyncio.run(_run_for(4.0, replays=False))
    # 0.5 + 1 + 2 s of waits fit in 4 s: at most four attempts (the old loop: eight).
    assert 2 <= attempts <= 4
    assert wakes == 0


def test_the_agents_own_speaker_still_wakes_a_replay_after_each_failure() -> None:
    attempts, wakes = asyncio.run(_run_for(2.0, replays=True))
    assert attempts >= 2
    assert wakes == attempts
