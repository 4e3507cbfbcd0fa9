"""One agent's mesh, alone: what tests/integration/test_mesh.py runs in each network
namespace (the real Prober and Mesh over real UDP, without the rest of the agent).
Prints one JSON line per change of the nodes held for dead."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bgplb.agent import probe
from bgplb.agent.mesh import INTERVAL, Mesh


async def main(node: str, host: str, port: int, key: bytes, peers: dict[str, str]) -> None:
    state = {"mesh": Mesh(node)}

    def answered(peer: str, suspects: frozenset[str]) -> None:
        state["mesh"] = state["mesh"].answered(peer, suspects, time.monotonic())

    prober = probe.Prober(node, key, lambda: state["mesh"].suspects(time.monotonic()), answered)
    await probe.listen(host, port, prober)
    addresses = {n: (ip, port) for n, ip in peers.items()}
    print(json.dumps({"node": node, "dead": [], "at": time.time()}), flush=True)
    while True:
        now = time.monotonic()
        was = state["mesh"].peers(addresses, now)
        prober.probe(addresses)
        state["mesh"] = was.tick(now)
        if state["mesh"].dead != was.dead:
            line = {"node": node, "dead": sorted(state["mesh"].dead), "at": time.time()}
            print(json.dumps(line), flush=True)
        await asyncio.sleep(INTERVAL)


if __name__ == "__main__":
    name, address, port_text, key_text, peers_json = sys.argv[1:]
    asyncio.run(main(name, address, int(port_text), key_text.encode(), json.loads(peers_json)))
