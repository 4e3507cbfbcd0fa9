"""The BFD container of the speaker Pod: BfdSpeaker behind a unix socket the agent
drives (PUT /sessions with the whole wanted set; GET /sessions for their states).

Beside gobgpd, not in the agent: BFD must outlive an agent restart as the BGP
sessions do (an agent rollout that stopped BFD would have every router drop this
node's sessions within a second), and the agent adopts what is running, as it does
with gobgpd.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Mapping
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bgplb.agent.bfd import State, Timers
from bgplb.agent.bfd_speaker import BfdSpeaker, Key
from bgplb.gobgpd import clear_stale

log = logging.getLogger("bgplb.bfd")

SOCKET = Path("/run/bgplb/speaker/bfd.sock")
TIMEOUT = 2.0


def encode(wanted: Mapping[Key, Timers]) -> list[dict[str, Any]]:
    return [
        {
            "local": str(local),
            "peer": str(peer),
            "transmitUs": t.transmit_us,
            "receiveUs": t.receive_us,
            "multiplier": t.multiplier,
        }
        for (local, peer), t in sorted(wanted.items())
    ]


def decode(sessions: Any) -> dict[Key, Timers]:
    """The wanted set from a request body; ValueError naming what is wrong."""
    if not isinstance(sessions, list):
        raise ValueError("sessions: must be a list")
    out = {}
    for i, s in enumerate(sessions):
        try:
            key = (IPv4Address(s["local"]), IPv4Address(s["peer"]))
            timers = Timers(int(s["transmitUs"]), int(s["receiveUs"]), int(s["multiplier"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"sessions[{i}]: {e}") from e
        if min(timers.transmit_us, timers.receive_us) < 10_000 or not 2 <= timers.multiplier <= 255:
            raise ValueError(f"sessions[{i}]: intervals of at least 10 ms, multiplier 2-255")
        out[key] = timers
    return out


def _states(speaker: BfdSpeaker) -> dict[str, str]:
    return {f"{local}>{peer}": s.name for (local, peer), s in speaker.states().items()}


def app(speaker: BfdSpeaker) -> web.Application:
    async def put(request: web.Request) -> web.Response:
        try:
            wanted = decode((await request.json()).get("sessions"))
        except (ValueError, AttributeError, json.JSONDecodeError) as e:
            return web.json_response({"error": str(e)}, status=400)
        failed = await asyncio.to_thread(speaker.sync, wanted)
        body = {
            "states": _states(speaker),
            "failed": {f"{a}>{b}": why for (a, b), why in failed.items()},
        }
        return web.json_response(body)

    async def get(_: web.Request) -> web.Response:
        return web.json_response({"states": _states(speaker)})

    application = web.Application()
    application.router.add_put("/sessions", put)
    application.router.add_get("/sessions", get)
    return application


async def serve(socket: Path) -> None:
    speaker = BfdSpeaker()
    speaker.start()
    clear_stale(socket)
    runner = web.AppRunner(app(speaker), access_log=None)
    await runner.setup()
    await web.UnixSite(runner, str(socket)).start()
    socket.chmod(0o600)
    log.info("bfd serving", extra={"socket": str(socket)})
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        speaker.close()


class BfdClient:
    """The agent's side: push the wanted sessions, read their states."""

    def __init__(self, socket: Path = SOCKET) -> None:
        self.socket = socket

    async def sync(self, wanted: Mapping[Key, Timers]) -> tuple[dict[str, State], dict[str, str]]:
        """States by `local>peer`, and the sessions that could not start, with why."""
        connector = aiohttp.UnixConnector(path=str(self.socket))
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        body_out = {"sessions": encode(wanted)}
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.put("http://bfd/sessions", json=body_out) as r,
        ):
            body = await r.json()
            if r.status != 200:
                raise ValueError(body.get("error", f"HTTP {r.status}"))
        states = {k: State[v] for k, v in body.get("states", {}).items()}
        return states, dict(body.get("failed", {}))
