"""One agent's mesh, alone: what tests/integration/test_mesh.py runs in each network
namespace (the real Prober and Mesh over real UDP, without the rest of the agent).
Prints one JSON line per change of the nodes held for dead."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

from bgplb.agent import probe
from bgplb.agent.mesh import INTERVAL, Mesh


async def main(node: str, host: str, port: int, key: bytes, peers: dict[str, str]) -> None:
    state = {"mesh": Mesh(node)}

    def answered(peer: str, suspects: frozenset[str]) -> None:
        state["mesh"] = state["mesh"].answered(peer, suspects, time.monotonic())

    def paused(peer: str, seconds: float) -> None:
        state["mesh"] = state["mesh"].paused(peer, time.monotonic() + seconds)

    prober = probe.Prober(
        node, key, lambda: state["mesh"].suspects(time.monotonic()), answered, paused
    )
    prober.start(host, port)
    addresses = {n: (ip, port) for n, ip in peers.items()}
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print(json.dumps({"node": node, "dead": [], "at": time.time()}), flush=True)
    while not stopping.is_set():
        now = time.monotonic()
        was = state["mesh"].peers(addresses, now)
        prober.probe(addresses)
        was = was.probed(addresses, now)
        state["mesh"] = was.tick(now)
        if state["mesh"].dead != was.dead:
            line = {"node": node, "dead": sorted(state["mesh"].dead), "at": time.time()}
            print(json.dumps(line), flush=True)
        await asyncio.sleep(INTERVAL)
    prober.pause(addresses, 4.0)  # as the agent does on SIGTERM
    await asyncio.sleep(0.1)
    prober.close()


if __name__ == "__main__":
    name, address, port_text, key_text, peers_json = sys.argv[1:]
    asyncio.run(main(name, address, int(port_text), key_text.encode(), json.loads(peers_json)))
