"""The lab's client: HTTP requests to a VIP, each on a new connection (a new source
port, so the ToR's layer-4 ECMP hash spreads them over the nodes).

`--count N` prints which node answered each request; `--log FILE` runs until killed,
one JSON line per request, for the failure drills to measure outages from. Logged
requests start on a fixed schedule, each on its own thread, as independent clients'
would: a sequential client stuck on a request to a dead node cannot see that the
route is already fixed until its timeout ends, which added up to `--timeout` to every
"traffic restored" figure (the LB-node drill's 1.085 s median was the withdrawal's
0.885 s plus that wait).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TextIO


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
        log(out, args.vip, args.port, args.timeout, args.interval)
    return 0


IN_FLIGHT = 32
"""At most this many requests at once (a 0.5 s timeout at one every 50 ms needs 11): a
stall of the client's own machine cannot pile up threads without bound."""


def log(out: TextIO, vip: str, port: int, timeout: float, interval: float) -> None:
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(IN_FLIGHT)

    def one(started: float) -> None:
        try:
            ok, body = request(vip, port, timeout)
            took = round(time.time() - started, 3)
            line = json.dumps({"t": started, "ok": ok, "answer": body, "dt": took}) + "\n"
            with lock:
                out.write(line)
        finally:
            slots.release()

    due = time.monotonic()
    while True:
        slots.acquire()
        threading.Thread(target=one, args=(time.time(),), daemon=True).start()
        due = max(due + interval, time.monotonic())  # after a stall, no burst to catch up
        time.sleep(max(0.0, due - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
