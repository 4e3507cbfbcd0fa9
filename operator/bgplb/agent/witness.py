"""Witnesses: other agents that say whether *they* reach the API server.

An agent that cannot renew its Lease cannot tell, alone, a partition (only it is cut
off: the controller will move its floating IPs, so it must drop them first) from an API
server outage (nobody can move anything: dropping them would take the data plane down
for nothing). It asks every other agent on the node network; the decision is
fencing.py's.

Each agent serves its own view on `<node-ip>:<port>/witness` and advertises that
address in its Lease; the controller publishes the list in the NetworkGatewayGroup's
status. Answers are authenticated with a key every agent shares (a Secret the chart
creates, as MetalLB's speakers share one for memberlist): the asker sends a fresh
nonce, the witness signs its answer, which names its node and repeats the nonce,
with HMAC-SHA256. A forged, replayed or misdirected answer counts as no answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

log = logging.getLogger("bgplb.agent")

ASKED_AT_ONCE = 64
"""Concurrent requests; every known witness is asked, for the quorum."""


@dataclass(frozen=True)
class Answer:
    reachable_for: float
    """For how long the witness has been renewing its Lease without a failure (0: it
    does not reach the API server now)."""
    renewed_ago: float | None = None
    """Seconds since its last successful renewal (None: never, or not said)."""


def parse(body: object) -> Answer | None:
    """A witness's reply; None (as no answer) when it is not what a witness sends."""
    if not isinstance(body, dict):
        return None
    reachable, renewed = body.get("reachableForSeconds"), body.get("renewedSecondsAgo")

    def seconds(value: object) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )

    if not seconds(reachable) or (renewed is not None and not seconds(renewed)):
        return None
    return Answer(float(reachable), None if renewed is None else float(renewed))  # type: ignore[arg-type]


SIGNATURE_HEADER = "X-Bgplb-Signature"
NONCE_BYTES = 16


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str, nonce: str, node: str) -> Answer | None:
    """The answer in `body` if it is signed with `key`, for this `nonce`, by `node`."""
    if not hmac.compare_digest(sign(key, body), signature):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("nonce") != nonce or data.get("node") != node:
        return None
    return parse(data)


def read_key(path: Path) -> bytes:
    """The shared key, from the mounted Secret; an error naming the file if unusable."""
    key = path.read_bytes().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: the witness key must be at least 16 bytes, got {len(key)}")
    return key


async def ask(
    witnesses: Mapping[str, str], key: bytes, timeout: float = 0.5
) -> dict[str, Answer | None]:
    """Ask every witness (node → `host:port`) at once; node → its verified answer."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def one(session: aiohttp.ClientSession, node: str, address: str) -> Answer | None:
        nonce = secrets.token_hex(NONCE_BYTES)
        try:
            url = f"http://{address}/witness"
            async with session.get(url, params={"nonce": nonce}) as reply:
                if reply.status != 200:
                    return None
                body = await reply.read()
                return verify(key, body, reply.headers.get(SIGNATURE_HEADER, ""), nonce, node)
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError):
            return None

    connector = aiohttp.TCPConnector(limit=ASKED_AT_ONCE)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:
        nodes = sorted(witnesses)
        answers = await asyncio.gather(*(one(session, n, witnesses[n]) for n in nodes))
        return dict(zip(nodes, answers, strict=True))


async def serve(
    host: str,
    port: int,
    node: str,
    *,
    key: bytes,
    reachable_for: Callable[[], float],
    renewed_ago: Callable[[], float | None],
) -> web.AppRunner:
    async def witness(request: web.Request) -> web.Response:
        nonce = request.query.get("nonce", "")
        if len(nonce) != 2 * NONCE_BYTES or not all(c in "0123456789abcdef" for c in nonce):
            return web.Response(status=400, text="nonce: 32 lowercase hex digits required")
        seconds = reachable_for()
        body = json.dumps(
            {
                "node": node,
                "nonce": nonce,
                "apiReachable": seconds > 0,
                "reachableForSeconds": seconds,
                "renewedSecondsAgo": renewed_ago(),
            }
        ).encode()
        return web.Response(
            body=body,
            content_type="application/json",
            headers={SIGNATURE_HEADER: sign(key, body)},
        )

    app = web.Application()
    app.router.add_get("/witness", witness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
