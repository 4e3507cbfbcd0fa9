"""The README's first command: `bgplb-lab up` shows sessions Established, both ToRs'
ECMP routes and the VIP answered by several nodes; `status` shows it again; `down`
leaves nothing behind."""

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
    parent = Path(tempfile.mkdtemp(prefix="bgplb-lab-cli-"))
    parent.chmod(0o755)  # FRR runs as its own user and must reach the lab's directory
    work = parent / "lab"
    prefix = f"c{os.getpid() % 10000}-"
    lab = ["--dir", str(work), "--prefix", prefix]
    try:
        up = bgplb_lab(*lab, "up")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        out = up.stdout
        assert "NAME           LOCAL ASN   PEER ASN   LOCAL IP      PEER IP     STATE" in out
        sessions = [line for line in out.splitlines() if line.startswith(("tor-", "192.0.2."))]
        assert len(sessions) == 7, out
        assert all(" Established " in line for line in sessions)
        assert "default-default-demo   203.0.113.1/32" in out
        assert out.count("nexthop via 192.0.2.1") >= 6  # ECMP on both ToRs
        served = {f"n{i}" for i in range(1, 4) if f"answered by n{i}" in out}
        assert len(served) >= 2, out
        status = bgplb_lab(*lab, "status")
        assert status.returncode == 0
        assert "default-default-demo" in status.stdout
    finally:
        down = bgplb_lab(*lab, "down")
    assert down.returncode == 0
    assert not [n for n in namespaces() if n.startswith(prefix)]
    assert not work.exists()
