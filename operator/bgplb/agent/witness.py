"""Witnesses: other agents that say whether *they* reach the API server.

An agent that cannot renew its Lease cannot tell, alone, a partition (only it is cut
off: the controller will move its floating IPs, so it must drop them first) from an API
server outage (nobody can move anything: dropping them would take the data plane down
for nothing). It asks the other agents on the node network:

- some witness has reached the API server for a while *and* renewed after this agent
  began failing → this node is partitioned → fence;
- witnesses answer and none has (none reaches it; or only since moments ago: the API
  server is just back, and the controller gives every node a fresh lease period then;
  or its last renewal came before this agent's first failure: the API server has just
  gone, for everyone, and the witness has not tried since) → keep, and ask again a
  second later;
- no witness answers → this node is isolated → fence.

The third case was found on real kubelets, where agents renew out of phase: at the
start of an outage a witness that last renewed 0.2 s before it still reported "in
contact for minutes", and every agent behind it in phase fenced.

Each agent serves its own view on `<node-ip>:<port>/witness` and advertises that
address in its Lease, where the others find it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

log = logging.getLogger("bgplb.agent")

WITNESS_ANNOTATION = "networking.bgplb.io/witness"
ASKED_AT_ONCE = 5
SLACK = 0.2
"""Seconds a witness's renewal must follow this agent's first failure to count: the
two clocks only meet through a request's round trip."""


@dataclass(frozen=True)
class Answer:
    reachable_for: float
    """For how long the witness has been renewing its Lease without a failure (0: it
    does not reach the API server now)."""
    renewed_ago: float | None = None
    """Seconds since its last successful renewal (None: never, or not said)."""


def keep_floating_ips(answers: Iterable[Answer | None], settled: float, failing_for: float) -> bool:
    """True only if some witness answered and none shows the API server up for others:
    in contact for `settled` seconds and renewed within the `failing_for` seconds this
    agent has been failing. None: no answer."""
    heard = [a for a in answers if a is not None]

    def api_up_for_it(a: Answer) -> bool:
        renewed_since_i_failed = a.renewed_ago is None or a.renewed_ago < failing_for - SLACK
        return a.reachable_for >= settled and renewed_since_i_failed

    return bool(heard) and not any(api_up_for_it(a) for a in heard)


def parse(body: object) -> Answer | None:
    """A witness's reply; None (as no answer) when it is not what a witness sends."""
    if not isinstance(body, dict):
        return None
    reachable, renewed = body.get("reachableForSeconds"), body.get("renewedSecondsAgo")
    numbers = (int, float)
    if not isinstance(reachable, numbers) or isinstance(reachable, bool):
        return None
    if renewed is not None and (not isinstance(renewed, numbers) or isinstance(renewed, bool)):
        return None
    return Answer(float(reachable), None if renewed is None else float(renewed))


async def ask(addresses: Sequence[str], timeout: float = 0.5) -> list[Answer | None]:
    """Ask up to ASKED_AT_ONCE witnesses (`host:port`) at once."""
    chosen = random.sample(list(addresses), min(ASKED_AT_ONCE, len(addresses)))
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def one(session: aiohttp.ClientSession, address: str) -> Answer | None:
        try:
            async with session.get(f"http://{address}/witness") as reply:
                if reply.status != 200:
                    return None
                return parse(await reply.json())
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError):
            return None

    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        return list(await asyncio.gather(*(one(session, a) for a in chosen)))


async def serve(
    host: str,
    port: int,
    node: str,
    reachable_for: Callable[[], float],
    renewed_ago: Callable[[], float | None],
) -> web.AppRunner:
    async def witness(_: web.Request) -> web.Response:
        seconds = reachable_for()
        return web.json_response(
            {
                "node": node,
                "apiReachable": seconds > 0,
                "reachableForSeconds": seconds,
                "renewedSecondsAgo": renewed_ago(),
            }
        )

    app = web.Application()
    app.router.add_get("/witness", witness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
