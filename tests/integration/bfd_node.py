"""One node's BFD speaker, alone: what tests/integration/test_bfd.py runs in a node's
network namespace (the real BfdSpeaker, without the rest of the agent). Prints one
JSON line per change of its sessions' states."""

from __future__ import annotations

import json
import signal
import sys
import time
from ipaddress import IPv4Address

from bgplb.agent.bfd import Timers
from bgplb.agent.bfd_speaker import BfdSpeaker


def main(local: str, peers: list[str], interval_ms: int) -> None:
    speaker = BfdSpeaker()
    timers = Timers(interval_ms * 1000, interval_ms * 1000, 3)
    wanted = {(IPv4Address(local), IPv4Address(p)): timers for p in peers}
    speaker.start()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    last: dict[str, str] = {}
    while not stopping:
        failed = speaker.sync(wanted)
        states = {str(peer): s.name for (_, peer), s in speaker.states().items()}
        if states != last or failed:
            line = {"states": states, "failed": {str(k[1]): v for k, v in failed.items()}}
            print(json.dumps({**line, "at": time.time()}), flush=True)
            last = states
        time.sleep(0.05)
    speaker.close()


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))
