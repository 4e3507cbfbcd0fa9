"""One agent change's CPU at scale, step by step, in-process (no API server).

Every agent reads every BGPAdvertisedRoute; on each change it reads its inputs,
plans the node and saves its state file. Prints the mean of `--repeat` calls of
each step, in ms, for `--routes` route objects sharing `--vips` VIPs (25 Services
to a VIP, as the bulk drill), on a node holding a floating IP (a Service session):
reading with nothing remembered (every object parsed: what each change cost before)
and with the last read remembered (one object changed), planning, and saving with
and without the last save's JSON. Run with `make bench-agent-change`. The addresses
are only data (nothing is sent anywhere).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bgplb.agent.desired import node_desired
from bgplb.agent.source import Dumped, Parsed, inputs_from, save_inputs
from bgplb.api import BGPSessionSpec

NODE_IP = IPv4Address("192.0.2.11")


def objects(routes: int, vips: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "kind": "BGPAdvertisedRoute",
            "metadata": {"name": f"default-default-bulk-{i}", "resourceVersion": str(i + 10)},
            "spec": {
                "prefix": f"203.0.113.{i % vips}/32",
                "nextHops": ["192.0.2.11", "192.0.2.12", "192.0.2.13"],
                "service": {"namespace": "default", "name": f"bulk-{i}"},
            },
        }
        for i in range(routes)
    ]
    spec = BGPSessionSpec.model_validate(
        {"floating_ip": "192.0.2.100", "local_ip": "192.0.2.100", "local_asn": 65001,
         "node_name": "n1", "peer_asn": 65000, "peer_ip": "192.0.2.1", "peer": "tor"}
    )  # fmt: skip
    meta = {"name": "tor-n1", "resourceVersion": "1"}
    dumped = spec.model_dump(mode="json", by_alias=True)
    out.append({"kind": "BGPSession", "metadata": meta, "spec": dumped})
    return out


def mean_ms(step: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        step()
    return round((time.perf_counter() - started) / repeat * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--vips", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    raw = objects(args.routes, args.vips)
    memo: Parsed = {}
    inputs = inputs_from(raw, memo)

    def one_changed() -> object:
        raw[0]["metadata"]["resourceVersion"] = str(time.monotonic_ns())
        return inputs_from(raw, memo)

    def plan() -> object:
        return node_desired(
            "n1", NODE_IP, sessions=inputs.sessions, routes=inputs.routes,
            floating_ips=[IPv4Address("192.0.2.100")], passwords={},
            pools=((int(IPv4Address("203.0.113.0")), int(IPv4Address("203.0.113.255"))),),
        )  # fmt: skip

    dumped: Dumped = {}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        save_inputs(state, inputs, dumped)
        figures = {
            "routes": args.routes,
            "read, every object parsed": mean_ms(lambda: inputs_from(raw), args.repeat),
            "read, one object changed": mean_ms(one_changed, args.repeat),
            "plan the node": mean_ms(plan, args.repeat),
            "save, every spec dumped": mean_ms(lambda: save_inputs(state, inputs), args.repeat),
            "save, JSON reused": mean_ms(lambda: save_inputs(state, inputs, dumped), args.repeat),
        }
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
