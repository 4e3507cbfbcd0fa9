"""The README's first command: `bgplb-lab up` shows Nodes Ready, the bgplb Pods Running,
sessions Established, both ToRs' ECMP routes and the VIP answered by several Pods;
`status` shows it again; `down` leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bgplb_lab.netns import namespaces


def bgplb_lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bgplb_lab.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_lab_up_status_down() -> None:
    """The real-node lab: Nodes Ready, the chart's Pods and the bgpadvertiser static
    Pods Running, sessions Established, the demo VIP on both ToRs, Pods answering."""
    parent = Path(tempfile.mkdtemp(prefix="bgplb-lab-cli-"))
    parent.chmod(0o755)  # FRR runs as its own user and must reach the lab's directory
    work = parent / "lab"
    prefix = f"c{os.getpid() % 10000}-"
    lab = ["--dir", str(work), "--prefix", prefix]
    try:
        up = bgplb_lab(*lab, "up")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        out = up.stdout
        nodes = [line.split() for line in out.splitlines() if line.startswith("n")]
        assert {
            (n[0], n[1]) for n in nodes if len(n) > 2 and n[1].startswith(("Ready", "Not"))
        } == {("n1", "Ready"), ("n2", "Ready"), ("n3", "Ready"), ("n4", "Ready")}, out
        pods = [line.split() for line in out.splitlines() if line.startswith("bgp")]
        advertisers = [p for p in pods if p[0].startswith("bgpadvertiser-")]
        assert sorted(p[0] for p in advertisers) == [
            "bgpadvertiser-n1",
            "bgpadvertiser-n2",
            "bgpadvertiser-n3",
        ], out
        assert all(p[2] == "Running" for p in pods), out
        assert all(p[3] == "0" for p in pods), out  # no restarts: they work in their images
        assert sum(p[0].startswith("bgplb-agent-") for p in pods) == 4
        assert sum(p[0].startswith("bgplb-speaker-") for p in pods) == 4
        assert sum(p[0].startswith("bgplb-controller-") for p in pods) == 2
        assert sum(p[0].startswith("bgplb-webhook-") for p in pods) == 2
        assert "NAME           LOCAL ASN   PEER ASN   LOCAL IP      PEER IP     STATE" in out
        sessions = [line for line in out.splitlines() if line.startswith(("tor-", "192.0.2."))]
        assert len(sessions) == 7, out
        assert all(" Established " in line for line in sessions)
        assert "default-default-demo   203.0.113.1/32" in out
        assert out.count("nexthop via 192.0.2.1") >= 6  # ECMP on both ToRs
        answers = {
            line.split("answered by ")[1] for line in out.splitlines() if "answered by" in line
        }
        assert len({a.split(" on ")[0] for a in answers}) >= 2, out  # several Pods
        status = bgplb_lab(*lab, "status")
        assert status.returncode == 0
        assert "default-default-demo" in status.stdout
    finally:
        down = bgplb_lab(*lab, "down")
        if not work.exists():  # else keep what `down` left behind, for a look
            parent.rmdir()
    assert down.returncode == 0
    assert not [n for n in namespaces() if n.startswith(prefix)]
    assert not work.exists()
    assert not [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
    # Every hierarchy, the unified one too: the nodes' cgroups show up there as well.
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{prefix}*"))
