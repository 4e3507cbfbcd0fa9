"""Witnesses: other agents that say whether *they* reach the API server.

An agent that cannot renew its Lease cannot tell, alone, a partition (only it is cut
off: the controller will move its floating IPs, so it must drop them first) from an API
server outage (nobody can move anything: dropping them would take the data plane down
for nothing). It asks the other agents on the node network:

- some witness has reached the API server for a while → this node is partitioned →
  fence;
- witnesses answer and none has (none reaches it, or only since moments ago: the API
  server is just back, and the controller gives every node a fresh lease period then)
  → keep, and ask again a second later;
- no witness answers → this node is isolated → fence.

Each agent serves its own view on `<node-ip>:<port>/witness` and advertises that
address in its Lease, where the others find it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence

import aiohttp
from aiohttp import web

log = logging.getLogger("bgplb.agent")

WITNESS_ANNOTATION = "networking.bgplb.io/witness"
ASKED_AT_ONCE = 5


def keep_floating_ips(answers: Iterable[float | None], settled: float) -> bool:
    """True only if some witness answered and none has reached the API server for
    `settled` seconds. `answers`: per witness, for how long it has been renewing its
    Lease without a failure (0: it does not reach the API; None: no answer)."""
    heard = [a for a in answers if a is not None]
    return bool(heard) and all(a < settled for a in heard)


async def ask(addresses: Sequence[str], timeout: float = 0.5) -> list[float | None]:
    """Ask up to ASKED_AT_ONCE witnesses (`host:port`) at once."""
    chosen = random.sample(list(addresses), min(ASKED_AT_ONCE, len(addresses)))
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def one(session: aiohttp.ClientSession, address: str) -> float | None:
        try:
            async with session.get(f"http://{address}/witness") as reply:
                if reply.status != 200:
                    return None
                body = await reply.json()
                return float(body.get("reachableForSeconds", 0.0))
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError):
            return None

    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        return list(await asyncio.gather(*(one(session, a) for a in chosen)))


async def serve(
    host: str, port: int, node: str, reachable_for: Callable[[], float]
) -> web.AppRunner:
    async def witness(_: web.Request) -> web.Response:
        seconds = reachable_for()
        return web.json_response(
            {"node": node, "apiReachable": seconds > 0, "reachableForSeconds": seconds}
        )

    app = web.Application()
    app.router.add_get("/witness", witness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
