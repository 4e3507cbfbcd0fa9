"""The lab's client: HTTP requests to a VIP, each on a new connection (a new source
port, so the ToR's layer-4 ECMP hash spreads them over the nodes).

`--count N` prints which node answered each request; `--log FILE` runs until killed,
one JSON line per request, for the failure drills to measure outages from.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from collections import Counter
from pathlib import Path


def request(host: str, port: int, timeout: float) -> tuple[bool, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        reply = conn.getresponse()
        body = reply.read().decode().strip()
        return reply.status == 200, body
    except OSError as e:
        return False, type(e).__name__
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bgplb-lab-client", description=__doc__)
    p.add_argument("vip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--timeout", type=float, default=0.5)
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--log", type=Path, help="run until killed, logging each request here")
    p.add_argument("--interval", type=float, default=0.05)
    args = p.parse_args(argv)
    if args.log is None:
        answers = [request(args.vip, args.port, args.timeout) for _ in range(args.count)]
        for ok, body in answers:
            print(f"  GET http://{args.vip}/ → {'answered by ' + body if ok else 'FAILED ' + body}")
        served = Counter(body for ok, body in answers if ok)
        print("  " + ", ".join(f"{node}: {n}" for node, n in sorted(served.items())))
        return 0 if served else 1
    with args.log.open("a", buffering=1) as out:
        while True:
            started = time.time()
            ok, body = request(args.vip, args.port, args.timeout)
            took = round(time.time() - started, 3)
            out.write(json.dumps({"t": started, "ok": ok, "answer": body, "dt": took}) + "\n")
            time.sleep(max(0.0, args.interval - (time.time() - started)))


if __name__ == "__main__":
    sys.exit(main())
