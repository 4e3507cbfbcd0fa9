"""Witnesses: other agents that say whether *they* reach the API server.

An agent that cannot renew its Lease cannot tell, alone, a partition (only it is cut
off: the controller will move its floating IPs, so it must drop them first) from an API
server outage (nobody can move anything: dropping them would take the data plane down
for nothing). It asks the other agents on the node network:

- some witness reaches the API server → this node is partitioned → fence;
- witnesses answer and none reaches it → the API server is down for all → keep;
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


def keep_floating_ips(answers: Iterable[bool | None]) -> bool:
    """True only if some witness answered and none of them reaches the API server.
    `answers`: per witness, whether it reaches the API (None: no answer)."""
    heard = [a for a in answers if a is not None]
    return bool(heard) and not any(heard)


async def ask(addresses: Sequence[str], timeout: float = 0.5) -> list[bool | None]:
    """Ask up to ASKED_AT_ONCE witnesses (`host:port`) at once."""
    chosen = random.sample(list(addresses), min(ASKED_AT_ONCE, len(addresses)))
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def one(session: aiohttp.ClientSession, address: str) -> bool | None:
        try:
            async with session.get(f"http://{address}/witness") as reply:
                if reply.status != 200:
                    return None
                body = await reply.json()
                return bool(body.get("apiReachable"))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        return list(await asyncio.gather(*(one(session, a) for a in chosen)))


async def serve(host: str, port: int, node: str, reachable: Callable[[], bool]) -> web.AppRunner:
    async def witness(_: web.Request) -> web.Response:
        return web.json_response({"node": node, "apiReachable": reachable()})

    app = web.Application()
    app.router.add_get("/witness", witness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
