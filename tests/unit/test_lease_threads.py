"""A Lease renewal never waits for the event loop's default executor: there it
queued behind status writes stuck on a slow API server and missed its fencing
deadline with nothing wrong with the renewal itself."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from typing import Any, cast

from bgplb.agent.lease import LeaseKeeper
from bgplb.agent.main import Agent


class Coordination:
    """Answers a Lease patch at once, as a healthy API server would."""

    def __init__(self) -> None:
        self.patched: list[str] = []

    def patch_namespaced_lease(self, name: str, namespace: str, body: Any, **_: Any) -> None:
        self.patched.append(body["spec"]["renewTime"])


def test_a_renewal_is_answered_while_every_default_thread_is_stuck() -> None:
    api = Coordination()
    agent = Agent(
        node="n4",
        node_ip=IPv4Address("192.0.2.14"),
        source=cast(Any, None),
        service=cast(Any, None),
        control_plane=None,
        floating=cast(Any, None),
        writer=cast(Any, None),
        lease=LeaseKeeper(api, "kube-system", "n4"),
    )
    stuck = threading.Event()

    async def scenario() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        # Status writes hanging on a slow API server hold every default thread.
        writes = [asyncio.ensure_future(asyncio.to_thread(stuck.wait, 5)) for _ in range(4)]
        try:
            await asyncio.wait_for(agent._renew([], (1, []), 0.8), 1.0)
        finally:
            stuck.set()
            await asyncio.gather(*writes)

    asyncio.run(scenario())
    assert len(api.patched) == 1
