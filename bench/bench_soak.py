"""Soak: the real-node lab under CPU stress and a lossy link, counting false alarms.

Busy loops on every node and random loss on a floating-IP holder's fabric link, with
client traffic throughout (drills.soak). Nothing is wrong with any node, so every
next hop missing from a ToR, mesh verdict, self-fence, floating-IP move, session flap
or failed request is a false alarm.

Run with `make bench-soak`; `--seconds`, `--loss` and `--busy` (loops per node) scale it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bgplb_lab import drills
from bgplb_lab.kubelets import KubeletLab


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--loss", type=float, default=0.05)
    p.add_argument("--busy", type=int, default=1, help="busy loops per node")
    args = p.parse_args()
    lab = KubeletLab(Path(tempfile.mkdtemp(prefix="bgplb-bench-soak-")), prefix="bs-", log=False)
    try:
        lab.up()
        drills.wait_stable(lab)
        print(drills.soak(lab, args.seconds, args.loss, args.busy), flush=True)
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
