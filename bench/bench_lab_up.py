"""`make bench-lab-up`: how long `bgplb-lab up` takes, and the whole lab's memory.

Runs `bgplb-lab up` then `down` RUNS times with what is cached (Kubernetes binaries
and images already built: the README's second and later runs), timing `up` from the
command's start to its last line. Meanwhile, twice a second, it adds up the
proportional set size (PSS, so shared libraries count once) of every process of the
lab: those in its network namespaces (etcd, kube-apiserver, controller-manager,
scheduler, containerd, kubelet, kube-proxy, hostNetwork Pods, FRR, BIRD) and those in
its nodes' cgroups (every other Pod). Prints each run, the median and the peak.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def lab_pids(prefix: str) -> set[int]:
    netns = set()
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if name.startswith(prefix):
            try:
                netns.add(os.stat(f"/run/netns/{name}").st_ino)
            except OSError:
                continue
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in netns:
                pids.add(int(entry))
                continue
            cgroups = Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            continue
        if f":/{prefix}" in cgroups:
            pids.add(int(entry))
    return pids


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_once(prefix: str, workdir: Path) -> tuple[float, int]:
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(pss_bytes(p) for p in lab_pids(prefix)))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lab = [sys.executable, "-m", "bgplb_lab.cli", "--dir", str(workdir), "--prefix", prefix]
    started = time.monotonic()
    up = subprocess.run([*lab, "up"], capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    time.sleep(5)  # the settled lab, as a user would leave it
    done.set()
    sampler.join()
    subprocess.run([*lab, "down"], capture_output=True, check=False)
    if up.returncode != 0:
        raise SystemExit(f"bgplb-lab up failed:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}")
    return seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="bgplb-bench-up-"))
    parent.chmod(0o755)
    prefix = f"bu{os.getpid() % 1000}-"
    times, peaks = [], []
    for i in range(args.runs):
        seconds, peak = run_once(prefix, parent / "lab")
        times.append(seconds)
        peaks.append(peak)
        print(f"run {i + 1}: up {seconds:.1f} s, peak PSS {peak / 2**30:.2f} GiB", flush=True)
    print(
        f"bgplb-lab up (cached), {args.runs} runs: median {statistics.median(times):.1f} s, "
        f"max {max(times):.1f} s; whole lab peak PSS median "
        f"{statistics.median(peaks) / 2**30:.2f} GiB, max {max(peaks) / 2**30:.2f} GiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
